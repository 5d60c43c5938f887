"""Real `helm` and `kubectl` binaries (unpacked from a pinned Python package) and helpers
that render the chart."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flashsale"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "shop"
NAMESPACE = "flashsale"


def load_k8s_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_tools", ROOT / "scripts" / "k8s_tools.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    tools = load_k8s_tools()
    try:
        return Path(tools.ensure_tools())
    except tools.ToolsError as exc:
        if "linux-amd64" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # Helm's own folders in a throwaway place: nothing read from or written to $HOME,
    # no repositories configured, so every call is offline.
    home = tmp_path_factory.mktemp("helm-home")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }


Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm(k8s_bin: Path, helm_env: dict[str, str]) -> Helm:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(k8s_bin / "helm"), *args],
            env=helm_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


class Rendered:
    """The objects `helm template` produced, with lookups by kind and name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.objects: list[dict[str, Any]] = [d for d in yaml.safe_load_all(text) if d]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def maybe(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) <= 1, f"{kind}/{name} rendered {len(found)} times"
        return found[0] if found else None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.maybe(kind, name)
        assert found is not None, f"{kind}/{name} not rendered; got {self.names()}"
        return found

    def names(self) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self.objects)


Render = Callable[..., Rendered]


@pytest.fixture(scope="session")
def render(helm: Helm) -> Iterator[Render]:
    cache: dict[tuple[str, ...], Rendered] = {}

    def run(*values_files: str, sets: tuple[str, ...] = ()) -> Rendered:
        key = (*values_files, "--", *sets)
        if key not in cache:
            args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
            for name in values_files:
                args += ["-f", str(CHART / "ci" / name)]
            for assignment in sets:
                args += ["--set", assignment]
            cache[key] = Rendered(helm(*args).stdout)
        return cache[key]

    yield run


def name(component: str) -> str:
    """Object name of one component for the test release."""
    return f"{RELEASE}-flashsale-{component}"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside a Deployment, StatefulSet, Job, CronJob or Pod."""
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]  # type: ignore[no-any-return]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's environment as NAME -> value, or NAME -> (secret name, key)."""
    env: dict[str, Any] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = (ref["name"], ref["key"])
    return env
