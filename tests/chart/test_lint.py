"""`helm lint --strict` and the values schema: good values pass, bad ones fail clearly."""

from __future__ import annotations

import json

import pytest

from tests.chart.conftest import CHART, CI_VALUES, Helm
from tests.helpers.crd import errors


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "default")
def test_helm_lint_strict_is_clean(helm: Helm, values: object) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values is not None:
        args += ["-f", str(values)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_helm_is_v3_or_v4(helm: Helm) -> None:
    version = helm("version", "--short").stdout.strip()
    assert version.startswith(("v3.", "v4.")), version


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("api.workers=0", "/api/workers"),
        ("api.replicaz=3", "'replicaz' not allowed"),
        ("image.pullPolicy=Sometimes", "value must be one of"),
        ("redis.appendfsync=never", "/redis/appendfsync"),
        ("reaper.schedule=every-minute", "/reaper/schedule"),
        ("settings.HANDOFF=publish", "FLASHSALE_"),
        ("redis.enabled=false", "/redis/external"),
        ("postgresql.enabled=false", "/postgresql/external"),
        ("api.service.type=Headless", "/api/service/type"),
        ("metrics.prometheusRule.persistLag.for=soon", "/metrics/prometheusRule/persistLag/for"),
        ("metrics.prometheusRule.loops.staleSecondz=60", "'staleSecondz' not allowed"),
    ],
)
def test_schema_refuses_bad_values_with_the_path(helm: Helm, assignment: str, message: str) -> None:
    result = helm("template", "shop", str(CHART), "--set", assignment, check=False)
    assert result.returncode != 0, f"--set {assignment} rendered"
    assert "schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_tls_without_a_certificate_secret_fails_with_a_sentence(helm: Helm) -> None:
    result = helm(
        "template",
        "shop",
        str(CHART),
        "--set",
        "api.ingress.enabled=true",
        "--set",
        "api.ingress.tls.enabled=true",
        check=False,
    )
    assert result.returncode != 0
    assert "api.ingress.tls.enabled needs api.ingress.tls.secretName" in result.stderr


def test_notes_tell_how_to_apply_a_first_sale_and_watch_it(helm: Helm) -> None:
    # A client-side dry run renders NOTES.txt without a cluster.
    result = helm("install", "shop", str(CHART), "--namespace", "shop", "--dry-run=client")
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n shop apply -f -" in notes
    assert "kubectl -n shop get flashsales -w" in notes
    assert "helm test shop -n shop" in notes
    assert "kubectl -n shop exec deploy/shop-flashsale-api -- flashsale token alice" in notes
    assert "port-forward svc/shop-flashsale-api 8000:80" in notes
    # The sale it tells you to apply is one the CRD accepts.
    sale = json.loads(notes.split("echo '", 1)[1].split("'", 1)[0])
    assert errors(sale) == []
