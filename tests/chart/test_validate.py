"""Every rendered manifest is valid Kubernetes: kubernetes-validate --strict, offline."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import CHART, Render

# The oldest and the newest Kubernetes this kubernetes-validate ships schemas for.
VERSIONS = ["1.33.0", "1.37.0"]
# Kinds of other projects' CRDs: no schema is shipped for them; tests/chart/test_render.py
# checks what they hold.
FOREIGN_KINDS = {"monitoring.coreos.com/v1": {"ServiceMonitor", "PrometheusRule"}}
VALUES = [(), *[(p.name,) for p in sorted((CHART / "ci").glob("*.yaml"))]]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("values", VALUES, ids=lambda v: v[0] if v else "default")
def test_rendered_manifests_are_valid(
    render: Render, values: tuple[str, ...], version: str
) -> None:
    validated = 0
    for obj in render(*values).objects:
        if obj["kind"] in FOREIGN_KINDS.get(obj["apiVersion"], set()):
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        validated += 1
    assert validated >= 8


@pytest.mark.parametrize("version", VERSIONS)
def test_crd_is_a_valid_custom_resource_definition(version: str) -> None:
    crd = yaml.safe_load((CHART / "crds" / "flashsales.flashsale.dev.yaml").read_text())
    kubernetes_validate.validate(crd, version, strict=True)


def test_strict_validation_catches_a_misspelt_field(render: Render) -> None:
    deployment = copy.deepcopy(next(o for o in render().objects if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
