"""The core install, as the container image makes it (`pip install .`, no extras), in a
fresh virtualenv: it leaves out the local servers, the demo's and the bench's weight, every
container command imports, and the commands that need an extra say which in one line.

Takes about a minute (pip's cache makes the downloads local after the first run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashsale.embedded import free_port
from tests.chart.conftest import ROOT
from tests.helpers.extras import EXTRA_ONLY, requirement_name

# What the Dockerfile copies before `pip install .`.
SOURCES = ("pyproject.toml", "README.md", "flashsale")


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("core-install")
    source = base / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        timeout=600,
    )
    yield venv


def _run(venv: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # Only the virtualenv on PATH: no redis-server or other tools of the developer's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASHSALE_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, cwd=venv.parent
    )


def test_core_install_leaves_out_the_extras(core_venv: Path) -> None:
    listed = _run(
        core_venv, str(core_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"
    )
    installed = {requirement_name(p["name"]) for p in json.loads(listed.stdout)}
    assert "flashsale" in installed and "fastapi-offline" in installed
    assert not installed & EXTRA_ONLY


def test_every_container_command_imports_from_the_core(core_venv: Path) -> None:
    done = _run(core_venv, str(core_venv / "bin" / "flashsale"), "--help")
    assert done.returncode == 0, done.stderr
    for command in ("api", "worker", "reap", "sweep", "migrate", "operator"):
        assert command in done.stdout
    done = _run(
        core_venv,
        str(core_venv / "bin" / "python"),
        "-c",
        "import flashsale.api.app, flashsale.worker.tasks, flashsale.operator.run, "
        "flashsale.db.migrate, flashsale.reaper, flashsale.sweeper",
    )
    assert done.returncode == 0, done.stderr
    for command in ("api", "worker", "reap", "sweep", "migrate", "operator"):
        done = _run(core_venv, str(core_venv / "bin" / "flashsale"), command, "--help")
        assert done.returncode == 0, (command, done.stderr)


@pytest.mark.parametrize(
    ("command", "extra"), [(("demo",), "demo"), (("up", "--port", str(free_port())), "local")]
)
def test_a_command_missing_its_extra_says_how_to_install_it(
    core_venv: Path, command: tuple[str, ...], extra: str
) -> None:
    """Without the extra (and no redis-server on PATH), one line naming the install."""
    done = _run(core_venv, str(core_venv / "bin" / "flashsale"), *command)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert f"pip install 'flashsale[{extra}]'" in lines[0]
