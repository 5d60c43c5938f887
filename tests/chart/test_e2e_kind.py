"""The kind end-to-end (scripts/e2e-kind.sh). It needs a Docker engine and minutes, so it
runs only on request; its preflight and its inputs are checked everywhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.conftest import ROOT

SCRIPT = ROOT / "scripts" / "e2e-kind.sh"
OPT_IN = "FLASHSALE_E2E_KIND"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


@pytest.mark.timeout(1800)
def test_kind_end_to_end(k8s_bin: Path) -> None:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(
            f"set {OPT_IN}=1 to run the kind end-to-end (builds the image, creates a cluster)"
        )
    if not docker_answers():
        pytest.skip(
            "no Docker engine answers (`docker info` failed); the kind end-to-end needs one"
        )
    if shutil.which("kind") is None:
        pytest.skip("kind is not on PATH; the kind end-to-end needs it")
    env = {**os.environ, "FLASHSALE_K8S_BIN": str(k8s_bin)}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, timeout=1750)
    assert result.returncode == 0, "scripts/e2e-kind.sh failed; its output is above"


def test_script_parses_and_uses_files_that_exist() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert (ROOT / "charts" / "flashsale" / "Chart.yaml").is_file() and "charts/flashsale" in text
    sale = re.search(r"^SALE=(\S+)$", text, re.MULTILINE)
    assert sale and (ROOT / "examples" / f"{sale.group(1)}.yaml").is_file()
    example = (ROOT / "examples" / f"{sale.group(1)}.yaml").read_text()
    assert "startsAt" not in example  # the sale the script buys from is active at once


def test_script_stops_with_a_reason_without_a_docker_engine(tmp_path: Path) -> None:
    # Stand-ins for the tools the preflight looks for; `docker info` fails like on a
    # machine whose Docker client has no engine behind it.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("docker", "kind", "helm", "kubectl", "curl", "python3"):
        stub = stubs / name
        stub.write_text(f"#!/bin/sh\nexit {1 if name == 'docker' else 0}\n")
        stub.chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPT)],
        env={"PATH": os.pathsep.join([str(stubs), "/usr/bin", "/bin"]), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no Docker engine answers" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_is_shellcheck_clean() -> None:
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
