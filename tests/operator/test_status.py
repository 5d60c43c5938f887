"""The status the operator writes: pure functions, checked against the CRD's own schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from flashsale.operator.handlers import spec_errors
from flashsale.operator.status import (
    changed_fields,
    condition,
    invalid_status,
    live_status,
    merge_conditions,
    room_document,
    timestamp,
    unavailable_status,
)
from flashsale.phase import Phase
from flashsale.sales import SaleStatus, StockFigures
from flashsale.spec import SaleSpec
from flashsale.stock.room import RoomFigures
from tests.operator.conftest import crd_version

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


def sale(phase: Phase = Phase.ACTIVE) -> SaleStatus:
    return SaleStatus(
        name="tv-drop",
        sku="TV",
        phase=phase,
        starts_at=None,
        ends_at=None,
        stock=StockFigures(total=10, remaining=4, reserved=1, pending_payment=2, paid=3, expired=5),
    )


def crd_status_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def stored(status: dict[str, Any]) -> dict[str, Any]:
    """The status as the API server keeps it after the merge patch: a null field is gone."""
    return {key: value for key, value in status.items() if value is not None}


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_live_status_reports_phase_figures_and_conditions() -> None:
    status = live_status(sale(), generation=3, now=T0, previous={})
    assert status["phase"] == "Active"
    assert status["observedGeneration"] == 3
    assert status["stock"] == {
        "total": 10,
        "remaining": 4,
        "reserved": 1,
        "pendingPayment": 2,
        "paid": 3,
        "expired": 5,
    }
    conditions = by_type(status)
    assert conditions["StockLoaded"]["status"] == "True"
    assert conditions["Ready"] == {
        "type": "Ready",
        "status": "True",
        "reason": "Active",
        "message": "selling",
        "lastTransitionTime": "2026-11-27T09:00:00Z",
        "observedGeneration": 3,
    }
    jsonschema.validate(stored(status), crd_status_schema())


def test_an_ended_sale_is_not_ready() -> None:
    status = live_status(sale(Phase.ENDED), generation=1, now=T0, previous={})
    assert by_type(status)["Ready"]["status"] == "False"
    assert by_type(status)["Ready"]["reason"] == "Ended"


def test_transition_time_moves_only_when_a_condition_flips() -> None:
    first = live_status(sale(), generation=1, now=T0, previous={})
    same = live_status(sale(), generation=1, now=T1, previous=first)
    assert by_type(same)["Ready"]["lastTransitionTime"] == timestamp(T0)
    assert changed_fields(first, same) == {}  # nothing new: no patch at all

    ended = live_status(sale(Phase.ENDED), generation=1, now=T1, previous=same)
    assert by_type(ended)["Ready"]["lastTransitionTime"] == timestamp(T1)
    assert by_type(ended)["StockLoaded"]["lastTransitionTime"] == timestamp(T0)
    assert set(changed_fields(same, ended)) == {"phase", "message", "conditions"}


def test_invalid_status_says_why_and_validates() -> None:
    before = live_status(sale(), generation=1, now=T0, previous={})
    status = invalid_status(
        "InvalidSpec", "stock: too small", generation=2, now=T1, previous=before
    )
    assert status["phase"] == "Invalid" and status["message"] == "stock: too small"
    assert status["observedGeneration"] == 2
    for kind in ("StockLoaded", "Ready"):
        assert by_type(status)[kind]["status"] == "False"
        assert by_type(status)[kind]["reason"] == "InvalidSpec"
        assert by_type(status)[kind]["lastTransitionTime"] == timestamp(T1)
    jsonschema.validate(stored(status), crd_status_schema())


def test_unavailable_backends_flip_ready_and_keep_the_phase() -> None:
    before = live_status(sale(), generation=1, now=T0, previous={})
    status = unavailable_status("cannot reach Redis", generation=1, now=T1, previous=before)
    assert "phase" not in status and "stock" not in status
    assert by_type(status)["Ready"]["reason"] == "BackendUnavailable"
    assert by_type(status)["StockLoaded"] == by_type(before)["StockLoaded"]
    jsonschema.validate(stored({**before, **status}), crd_status_schema())


def test_merge_conditions_replaces_by_type_and_keeps_the_rest() -> None:
    old = [{"type": "Ready", "status": "True"}, {"type": "Custom", "status": "True"}]
    new = [condition("Ready", False, "R", "m", 1, T0)]
    merged = merge_conditions(old, new)
    assert [c["type"] for c in merged] == ["Custom", "Ready"]
    assert merged[1]["status"] == "False"


def test_unknown_condition_status() -> None:
    assert condition("Ready", None, "R", "m", 1, T0)["status"] == "Unknown"


def test_spec_errors_name_fields_as_the_user_wrote_them() -> None:
    with pytest.raises(ValidationError) as caught:
        SaleSpec.model_validate({"sku": "", "stock": -1, "rateLimit": {"burst": 0}, "x": 1})
    message = spec_errors(caught.value)
    assert "stock: Input should be greater than or equal to 0" in message
    assert "rateLimit.burst" in message and "sku" in message and "x: Extra inputs" in message
    assert "\n" not in message  # one line, fit for a condition and an Event


def room(seed: str | None = None, draw: bool = True) -> RoomFigures:
    return RoomFigures(
        waiting=120,
        admitted=40,
        admissions=65,
        expiries=3,
        draw_commitment="c" * 64 if draw else None,
        draw_seed=seed,
    )


def test_a_sale_without_a_waiting_room_has_none_in_its_status() -> None:
    status = live_status(sale(), generation=1, now=T0, previous={})
    assert status["waitingRoom"] is None  # a merge patch's null: a removed room's go too
    assert "waitingRoom" not in stored(status)
    assert changed_fields(stored(status), status) == {}  # nothing to remove: no patch


def test_the_waiting_room_shows_the_commitment_before_the_start_and_the_seed_after() -> None:
    before = live_status(sale(Phase.SCHEDULED), generation=1, now=T0, previous={}, room=room())
    assert before["waitingRoom"] == {
        "waiting": 120,
        "admitted": 40,
        "admissions": 65,
        "expired": 3,
        "drawCommitment": "c" * 64,
    }
    jsonschema.validate(stored(before), crd_status_schema())
    after = live_status(sale(), generation=1, now=T1, previous=before, room=room("s" * 64))
    assert after["waitingRoom"]["drawSeed"] == "s" * 64
    assert "waitingRoom" in changed_fields(before, after)
    jsonschema.validate(stored(after), crd_status_schema())


def test_a_first_come_first_served_room_has_no_draw_figures() -> None:
    assert room_document(room(draw=False)) == {
        "waiting": 120,
        "admitted": 40,
        "admissions": 65,
        "expired": 3,
    }
    assert room_document(None) is None
