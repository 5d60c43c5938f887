"""Schemathesis against the served OpenAPI schema, every operation, with requests that fit
the schema and requests that break it: no 5xx, valid ones are not refused as invalid,
and every answer (status, content type, body) matches the documented schema."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import Platform, token

EXAMPLES_PER_OPERATION = 100
REPORT_FILE = Path(__file__).resolve().parents[2] / "build" / "fuzz-report.json"


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> int:
    """Run one operation's generated cases; returns how many ran."""
    count = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def answers_within_schema(case: Any) -> None:
        nonlocal count
        count += 1
        case.call_and_validate(headers=headers, timeout=10)

    answers_within_schema()
    return count


def test_every_operation_answers_within_its_schema(platform: Platform, api: str) -> None:
    platform.sale("fuzz-sale", stock=1000, perUserLimit=1000)  # one name that exists
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    headers = {"Authorization": f"Bearer {token('fuzzer')}"}
    cases: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation, mode in itertools.product(operations, GenerationMode):
        label = f"{operation.method.upper()} {operation.path} ({mode.value})"
        try:
            cases[label] = fuzz(operation, mode, headers)
        except Unsatisfiable:
            # Only free-form strings in the path and no body: nothing can be made invalid.
            assert mode is GenerationMode.NEGATIVE, label
    assert cases["POST /v1/sales/{sale}/reservations (negative)"] >= EXAMPLES_PER_OPERATION // 2
    REPORT_FILE.parent.mkdir(exist_ok=True)
    REPORT_FILE.write_text(
        json.dumps({"cases": sum(cases.values()), "by_operation": cases}, indent=2) + "\n"
    )
