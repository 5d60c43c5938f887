"""The FlashSale CRD as the tests read it, and a validator that checks documents against its
schema the way the API server does."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "crds" / "flashsales.flashsale.dev.yaml"
CRD: dict[str, Any] = yaml.safe_load(SOURCE.read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]
SPEC_SCHEMA: dict[str, Any] = SCHEMA["properties"]["spec"]

# RFC 3339 as the API server reads `format: date-time`: a full date, time and offset.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as `kubectl apply` enforces it (field validation Strict): unknown fields in
    the spec are errors, not silently pruned."""
    schema = copy.deepcopy(schema)

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            for child in node["properties"].values():
                walk(child)
        if "items" in node:
            walk(node["items"])

    walk(schema)
    return schema


VALIDATOR = jsonschema.Draft4Validator(strict(SCHEMA), format_checker=FORMATS)


def errors(document: dict[str, Any]) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(document)]
