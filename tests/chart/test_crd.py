"""The FlashSale CRD: one source of truth, the same fields, bounds and defaults as SaleSpec,
and a schema that refuses what the operator would refuse."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from flashsale.spec import MAX_SEGMENTS, SaleSpec
from tests.chart.conftest import CHART, ROOT
from tests.helpers.crd import CRD, SCHEMA, SOURCE, SPEC_SCHEMA, VERSION, errors, strict

COPY = CHART / "crds" / "flashsales.flashsale.dev.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def with_defaults(spec: dict[str, Any], schema: dict[str, Any] = SPEC_SCHEMA) -> dict[str, Any]:
    """Structural defaulting as the API server does it: missing fields get their default,
    then defaulted and given objects are defaulted inside."""
    spec = copy.deepcopy(spec)
    for field, sub in schema.get("properties", {}).items():
        if field not in spec and "default" in sub:
            spec[field] = copy.deepcopy(sub["default"])
        if field in spec and sub.get("type") == "object":
            spec[field] = with_defaults(spec[field], sub)
    return spec


def sale(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flashsale.dev/v1alpha1",
        "kind": "FlashSale",
        "metadata": {"name": "tv-drop"},
        "spec": spec,
    }


def model_properties() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = SaleSpec.model_json_schema(by_alias=True)
    return schema, schema["$defs"]


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return defs[node["$ref"].split("/")[-1]]  # type: ignore[no-any-return]
    if "anyOf" in node:  # Optional[...]: the non-null branch
        return resolve(next(n for n in node["anyOf"] if n.get("type") != "null"), defs)
    return node


def test_chart_copy_is_identical() -> None:
    assert COPY.read_bytes() == SOURCE.read_bytes(), (
        "charts/flashsale/crds/ differs from crds/: cp crds/flashsales.flashsale.dev.yaml "
        "charts/flashsale/crds/"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [SOURCE.name]


def test_names_scope_and_status_subresource() -> None:
    assert CRD["metadata"]["name"] == "flashsales.flashsale.dev"
    spec = CRD["spec"]
    assert spec["group"] == "flashsale.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "FlashSale",
        "listKind": "FlashSaleList",
        "plural": "flashsales",
        "singular": "flashsale",
        "shortNames": ["fs"],
        "categories": ["flashsale"],
    }
    assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
    assert VERSION["served"] and VERSION["storage"]
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns_for_kubectl_get_fs() -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"])
        for c in VERSION["additionalPrinterColumns"]
        if not c.get("priority")
    ]
    assert columns == [
        ("SKU", "string", ".spec.sku"),
        ("PHASE", "string", ".status.phase"),
        ("REMAINING", "integer", ".status.stock.remaining"),
        ("PAID", "integer", ".status.stock.paid"),
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


def test_wide_output_adds_the_window_the_segments_the_queue_and_the_message() -> None:
    wide = [
        (c["name"], c["type"], c["jsonPath"])
        for c in VERSION["additionalPrinterColumns"]
        if c.get("priority") == 1
    ]
    assert wide == [
        ("STARTS", "string", ".spec.startsAt"),
        ("ENDS", "string", ".spec.endsAt"),
        ("SEGMENTS", "integer", ".spec.segments"),
        ("WAITING", "integer", ".status.waitingRoom.waiting"),
        ("ADMITTED", "integer", ".status.waitingRoom.admitted"),
        ("MESSAGE", "string", ".status.message"),
    ]


def test_a_waiting_room_is_optional_and_its_fields_default_like_the_model() -> None:
    assert "waitingRoom" not in with_defaults({"sku": "TV", "stock": 10})
    given = {"sku": "TV", "stock": 10, "waitingRoom": {}}
    assert with_defaults(given) == SaleSpec.model_validate(given).as_document()
    assert with_defaults(given)["waitingRoom"] == {
        "order": "draw",
        "admitPerSecond": 50.0,
        "shoppingSeconds": 120,
        "overbook": 1.0,
    }
    room = {
        "opensAt": "2026-11-27T08:45:00Z",
        "order": "fifo",
        "admitPerSecond": 100000,
        "shoppingSeconds": 86400,
        "overbook": 1000,
    }
    document = sale(sku="TV", stock=10, startsAt="2026-11-27T09:00:00Z", waitingRoom=room)
    assert errors(document) == []
    SaleSpec.model_validate(document["spec"])


def test_segments_are_bounded_like_the_model_and_default_to_one() -> None:
    segments = SPEC_SCHEMA["properties"]["segments"]
    assert (segments["type"], segments["minimum"], segments["maximum"]) == ("integer", 1, 64)
    assert segments["maximum"] == MAX_SEGMENTS
    assert segments["default"] == 1 == SaleSpec.model_fields["segments"].default
    assert with_defaults({"sku": "TV", "stock": 10})["segments"] == 1
    for good in (1, 3, MAX_SEGMENTS):
        assert errors(sale(sku="TV", stock=10, segments=good)) == []
        assert SaleSpec.model_validate({"sku": "TV", "stock": 10, "segments": good})


def test_spec_fields_match_the_sale_model() -> None:
    model, defs = model_properties()

    def compare(crd: dict[str, Any], pydantic: dict[str, Any], where: str) -> None:
        assert set(crd["properties"]) == set(pydantic["properties"]), where
        assert sorted(crd.get("required", [])) == sorted(pydantic.get("required", [])), where
        for field, ours in crd["properties"].items():
            theirs = resolve(pydantic["properties"][field], defs)
            path = f"{where}.{field}"
            assert ours["type"] == theirs["type"], path
            default = pydantic["properties"][field].get("default")
            optional = "anyOf" in pydantic["properties"][field] and default is None
            if ours["type"] == "object":
                compare(ours, theirs, path)
                if optional:  # absent unless given (a waiting room)
                    assert "default" not in ours, f"{path}: an optional object has no default"
                else:
                    assert ours["default"] == {}, (
                        f"{path}: nested defaults apply only under a {{}} default"
                    )
                continue
            assert ours.get("default") == default, path
            assert ours.get("enum") == theirs.get("enum"), f"{path} enum"
            for bound in ("maxLength", "minLength"):
                assert ours.get(bound) == theirs.get(bound), f"{path} {bound}"
            if "format" in theirs or ours.get("format") == "date-time":
                assert ours.get("format") == theirs.get("format"), f"{path} format"
            if "exclusiveMinimum" in theirs:  # JSON Schema 2020 number vs OpenAPI 3.0 flag
                assert (ours["minimum"], ours["exclusiveMinimum"]) == (
                    theirs["exclusiveMinimum"],
                    True,
                )
            else:
                assert ours.get("minimum") == theirs.get("minimum"), f"{path} minimum"
                assert "exclusiveMinimum" not in ours, path
            assert ours.get("maximum") == theirs.get("maximum"), f"{path} maximum"

    compare(SPEC_SCHEMA, model, "spec")


def test_defaults_the_api_server_fills_in_are_the_models_defaults() -> None:
    given = {"sku": "TV-55-OLED", "stock": 10, "worker": {"replicas": 3}}
    assert with_defaults(given) == SaleSpec.model_validate(given).as_document()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_sales(path: Any) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    for document in documents:
        assert document["apiVersion"] == "flashsale.dev/v1alpha1"
        assert document["kind"] == "FlashSale"
        assert errors(document) == []
        SaleSpec.model_validate(document["spec"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"sku": "TV"}, "'stock' is a required property"),
        ({"sku": "TV", "stock": -1}, "less than the minimum of 0"),
        ({"sku": "TV", "stock": 10, "perUserLimt": 1}, "'perUserLimt' was unexpected"),
        ({"sku": "TV", "stock": 10, "startsAt": "tomorrow 9am"}, "is not a 'date-time'"),
        ({"sku": "TV", "stock": 10, "endsAt": "2026-11-27T10:00:00"}, "is not a 'date-time'"),
        ({"sku": "", "stock": 10}, "should be non-empty"),
        ({"sku": "TV", "stock": 2.5}, "is not of type 'integer'"),
        ({"sku": "TV", "stock": 10, "perUserLimit": 0}, "less than the minimum of 1"),
        ({"sku": "TV", "stock": 10, "paymentTimeoutSeconds": 0}, "less than the minimum of 1"),
        ({"sku": "TV", "stock": 10, "rateLimit": {"burst": 0}}, "less than the minimum of 1"),
        (
            {"sku": "TV", "stock": 10, "worker": {"ordersPerSecond": 0}},
            "less than or equal to the minimum",
        ),
        ({"sku": "TV", "stock": 10, "api": {"replicas": -1}}, "less than the minimum of 0"),
        ({"sku": "TV", "stock": 10, "paused": "maybe"}, "is not of type 'boolean'"),
        # What PostgreSQL's integer columns cannot hold is refused before anything is written.
        ({"sku": "TV", "stock": 10**12}, "greater than the maximum of 2147483647"),
        (
            {"sku": "TV", "stock": 10, "paymentTimeoutSeconds": 99999999999},
            "greater than the maximum of 2147483647",
        ),
        ({"sku": "TV", "stock": 10, "perUserLimit": 2**31}, "greater than the maximum"),
        # One sale's stock spreads over 1 to 64 hash slots.
        ({"sku": "TV", "stock": 10, "segments": 0}, "less than the minimum of 1"),
        ({"sku": "TV", "stock": 10, "segments": 65}, "greater than the maximum of 64"),
        # The waiting room's bounds.
        ({"sku": "TV", "stock": 10, "waitingRoom": {"order": "lottery"}}, "is not one of"),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"admitPerSecond": 0}},
            "less than or equal to the minimum",
        ),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"admitPerSecond": 100001}},
            "greater than the maximum of 100000",
        ),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"shoppingSeconds": 0}},
            "less than the minimum of 1",
        ),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"shoppingSeconds": 86401}},
            "greater than the maximum of 86400",
        ),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"shoppingSeconds": 1.5}},
            "is not of type 'integer'",
        ),
        ({"sku": "TV", "stock": 10, "waitingRoom": {"overbook": 0}}, "less than or equal"),
        (
            {"sku": "TV", "stock": 10, "waitingRoom": {"overbook": 1001}},
            "greater than the maximum of 1000",
        ),
        ({"sku": "TV", "stock": 10, "waitingRoom": {"opensAt": "soon"}}, "is not a 'date-time'"),
        ({"sku": "TV", "stock": 10, "waitingRoom": {"seats": 5}}, "'seats' was unexpected"),
        ({"sku": "TV\x00", "stock": 10}, "does not match"),
        ({"sku": "line\nbreak", "stock": 10}, "does not match"),
    ],
)
def test_broken_specs_are_refused_by_the_crd_and_the_model(
    spec: dict[str, Any], message: str
) -> None:
    found = errors(sale(**spec))
    assert any(message in e for e in found), found
    with pytest.raises(ValidationError):
        SaleSpec.model_validate(spec)


def test_a_sale_without_spec_is_refused() -> None:
    document = sale()
    del document["spec"]
    assert "'spec' is a required property" in errors(document)


def test_window_order_is_checked_by_validation_rules() -> None:
    rules = SPEC_SCHEMA["x-kubernetes-validations"]
    assert rules == [
        {
            "rule": "!has(self.startsAt) || !has(self.endsAt) || self.endsAt > self.startsAt",
            "message": "endsAt must be after startsAt",
        },
        {
            "rule": "!has(self.waitingRoom) || !has(self.waitingRoom.opensAt) || "
            "!has(self.startsAt) || self.waitingRoom.opensAt <= self.startsAt",
            "message": "waitingRoom.opensAt must not be after startsAt",
        },
    ]
    with pytest.raises(ValidationError, match="waitingRoom.opensAt must not be after startsAt"):
        SaleSpec.model_validate(
            {
                "sku": "TV",
                "stock": 1,
                "startsAt": "2026-11-27T09:00:00Z",
                "waitingRoom": {"opensAt": "2026-11-27T09:00:01Z"},
            }
        )
    SaleSpec.model_validate(  # opening when the sale starts is allowed
        {
            "sku": "TV",
            "stock": 1,
            "startsAt": "2026-11-27T09:00:00Z",
            "waitingRoom": {"opensAt": "2026-11-27T09:00:00Z"},
        }
    )
    with pytest.raises(ValidationError, match="endsAt must be after startsAt"):
        SaleSpec.model_validate(
            {
                "sku": "TV",
                "stock": 1,
                "startsAt": "2026-11-27T10:00:00Z",
                "endsAt": "2026-11-27T09:00:00Z",
            }
        )


def test_status_schema_takes_what_the_operator_writes() -> None:
    document = sale(sku="TV", stock=10)
    document["status"] = {
        "phase": "Active",
        "message": "selling",
        "observedGeneration": 2,
        "stock": {
            "total": 10,
            "remaining": 7,
            "reserved": 1,
            "pendingPayment": 1,
            "paid": 1,
            "expired": 0,
        },
        "conditions": [
            {
                "type": "StockLoaded",
                "status": "True",
                "reason": "Loaded",
                "message": "10 units in Redis",
                "lastTransitionTime": "2026-11-27T09:00:00Z",
                "observedGeneration": 2,
            },
            {
                "type": "Ready",
                "status": "False",
                "reason": "RedisUnreachable",
                "message": "timeout",
            },
        ],
    }
    assert errors(document) == []
    document["status"]["waitingRoom"] = {
        "waiting": 120,
        "admitted": 40,
        "admissions": 65,
        "expired": 3,
        "drawCommitment": "a" * 64,
        "drawSeed": "b" * 64,
    }
    assert errors(document) == []
    document["status"]["waitingRoom"]["drawCommitment"] = "not-a-digest"
    assert any("does not match" in e for e in errors(document))
    document["status"]["waitingRoom"]["drawCommitment"] = "a" * 64
    for phase in ("Scheduled", "Active", "SoldOut", "Ended", "Paused", "Invalid"):
        document["status"]["phase"] = phase
        assert errors(document) == []
    document["status"]["phase"] = "Running"
    assert any("'Running' is not one of" in e for e in errors(document))
    document["status"]["phase"] = "Active"
    document["status"]["conditions"][0]["status"] = "yes"
    assert any("'yes' is not one of" in e for e in errors(document))
    document["status"]["conditions"][0]["status"] = "True"
    document["status"]["stock"]["remaining"] = "7"
    assert any("is not of type 'integer'" in e for e in errors(document))
    # No preserve-unknown-fields anywhere: kopf keeps its bookkeeping in annotations.
    assert "x-kubernetes-preserve-unknown-fields" not in SOURCE.read_text()


def test_schema_is_structural() -> None:
    """What the API server demands of a CRD schema: a type on every node, no
    additionalProperties beside properties, no references, and defaults that validate."""

    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "not"} & set(node), path
        if "properties" in node:
            assert "additionalProperties" not in node, path
            for field, child in node["properties"].items():
                walk(child, f"{path}.{field}")
        if "items" in node:
            walk(node["items"], f"{path}[]")
        if "default" in node:
            default = with_defaults(node["default"], node) if node["type"] == "object" else None
            checked = default if default is not None else node["default"]
            assert not list(jsonschema.Draft4Validator(strict(node)).iter_errors(checked)), path

    walk(SCHEMA, "")
    for field in SPEC_SCHEMA["properties"].values():
        assert field["description"]
