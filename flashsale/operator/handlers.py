"""kopf handlers of FlashSale resources: load on create/resume/update, refresh on a timer,
clean up on delete. Each handler is thin; the figures and patches come from pure modules."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from flashsale.operator.context import BACKEND_ERRORS, OperatorContext
from flashsale.operator.kube import GROUP, PLURAL, VERSION
from flashsale.operator.status import (
    INVALID,
    changed_fields,
    invalid_status,
    live_status,
    room_document,
    stock_document,
    unavailable_status,
)
from flashsale.sales import InvalidSale, SaleHeld, SaleStatus, apply_sale, sale_status
from flashsale.spec import SaleSpec
from flashsale.stock.room import RoomFigures


def spec_errors(exc: ValidationError) -> str:
    """One line per problem, named by the field as the user wrote it (camelCase)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'spec'}: {err['msg']}"
        for err in exc.errors()
    )


def _generation(meta: Mapping[str, Any]) -> int:
    return int(meta.get("generation") or 1)


def _write(patch: kopf.Patch, current: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    changes = changed_fields(current, wanted)
    if changes:
        patch.status.update(changes)


def _key(body: kopf.Body) -> str:
    return f"{body.metadata.namespace}/{body.metadata.name}"


class PhaseHerald:
    """Every phase change becomes one Kubernetes Event on the sale (`kubectl describe fs`).

    The handlers and the timer of one sale run side by side and may each see the status
    from before the other's patch; remembering what was announced (and which generation was
    refused) keeps it to one Event and keeps a timer from writing over a refusal. After a
    restart the status itself tells the last phase."""

    def __init__(self) -> None:
        self._announced: dict[str, str] = {}
        self._refused: dict[str, int] = {}

    def announce(self, body: kopf.Body, phase: str, current: Any) -> None:
        before = self._announced.get(_key(body), current)
        self._announced[_key(body)] = phase
        self._refused.pop(_key(body), None)
        if before != phase:
            kopf.info(body, reason="PhaseChanged", message=f"phase {before or 'none'} -> {phase}")

    def refused(self, body: kopf.Body, generation: int) -> None:
        """The spec of `generation` was refused (and a Warning Event said why)."""
        self._announced[_key(body)] = INVALID
        self._refused[_key(body)] = generation

    def is_refused(self, body: kopf.Body, generation: int) -> bool:
        return self._refused.get(_key(body)) == generation

    def forget(self, body: kopf.Body) -> None:
        self._announced.pop(_key(body), None)
        self._refused.pop(_key(body), None)


def register(registry: kopf.OperatorRegistry, op: OperatorContext) -> None:
    """Attach the FlashSale handlers to `registry`, bound to this operator's context."""
    # What failed for a passing reason (Redis or PostgreSQL away, orders still in flight)
    # is tried again as often as the status is refreshed.
    retry = op.settings.refresh_seconds
    herald = PhaseHerald()
    # The spec generation each sale was last loaded at, by this process. A refresh that
    # read Redis while a slow load finished (a respread over new segments takes seconds)
    # would otherwise write the generation it saw before back over the handler's status.
    loaded: dict[str, int] = {}

    def read_sale(name: str) -> tuple[SaleStatus | None, RoomFigures | None]:
        """The sale's phase and stock figures, and its waiting room's (None without one)."""
        sale = sale_status(op.sessions, op.stock, name)
        return sale, (op.stock.room_figures(name) if sale is not None else None)

    def refuse(
        body: kopf.Body,
        name: str,
        meta: Mapping[str, Any],
        status: Mapping[str, Any],
        patch: kopf.Patch,
        reason: str,
        message: str,
    ) -> kopf.PermanentError:
        _write(patch, status, invalid_status(reason, message, _generation(meta), _now(), status))
        kopf.warn(body, reason=reason, message=message)
        op.metrics.record_sale(name, INVALID, None)
        herald.refused(body, _generation(meta))
        return kopf.PermanentError(message)

    async def load(
        body: kopf.Body,
        name: str,
        meta: Mapping[str, Any],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        patch: kopf.Patch,
        logger: kopf.Logger,
    ) -> None:
        try:
            parsed = SaleSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise refuse(body, name, meta, status, patch, "InvalidSpec", spec_errors(exc)) from None
        try:
            remaining = await asyncio.to_thread(apply_sale, op.sessions, op.stock, name, parsed)
            sale, room = await asyncio.to_thread(read_sale, name)
        except SaleHeld as exc:  # a respread waiting for the workers: try again soon
            logger.warning(str(exc))
            raise kopf.TemporaryError(str(exc), delay=retry) from exc
        except InvalidSale as exc:
            raise refuse(body, name, meta, status, patch, "Refused", str(exc)) from None
        except BACKEND_ERRORS as exc:
            message = f"cannot reach Redis or PostgreSQL: {type(exc).__name__}: {exc}"
            _write(patch, status, unavailable_status(message, _generation(meta), _now(), status))
            raise kopf.TemporaryError(message, delay=retry) from exc
        spread = f" over {parsed.segments} segments" if parsed.segments > 1 else ""
        logger.info(f"sale {name} loaded: {remaining} of {parsed.stock} units for sale{spread}")
        loaded[_key(body)] = _generation(meta)
        op.rescale.set()
        if sale is not None:
            publish(body, name, sale, room, _generation(meta), status, patch)

    def publish(
        body: kopf.Body,
        name: str,
        sale: SaleStatus,
        room: RoomFigures | None,
        generation: int,
        status: Mapping[str, Any],
        patch: kopf.Patch,
    ) -> None:
        wanted = live_status(sale, generation, _now(), status, room)
        _write(patch, status, wanted)
        herald.announce(body, wanted["phase"], status.get("phase"))
        op.metrics.record_sale(name, wanted["phase"], sale.stock)

    resource = (GROUP, VERSION, PLURAL)

    # One handler for the three events; kopf keeps their progress apart by id. The loader
    # is idempotent: a restart (resume) re-applies the same totals and changes nothing.
    @kopf.on.create(*resource, id="load-on-create", registry=registry, backoff=retry)
    @kopf.on.update(*resource, field="spec", id="load-on-update", registry=registry, backoff=retry)
    @kopf.on.resume(*resource, id="load-on-resume", registry=registry, backoff=retry)
    async def sale_loaded(
        body: kopf.Body,
        name: str,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        logger: kopf.Logger,
        **_: Any,
    ) -> None:
        await load(body, name, meta, spec, status, patch, logger)

    @kopf.timer(
        *resource,
        id="refresh",
        interval=op.settings.refresh_seconds,
        registry=registry,
        when=lambda meta, **_: not meta.get("deletionTimestamp"),
    )
    async def sale_refresh(
        body: kopf.Body,
        name: str,
        meta: kopf.Meta,
        status: kopf.Status,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        generation = _generation(meta)

        def observed() -> int:
            # The newest generation loaded, asked after the reads: never one a handler has
            # moved the status past meanwhile.
            shown = int(status.get("observedGeneration") or generation)
            return max(shown, loaded.get(_key(body), 0))

        def refused() -> bool:
            # Refused as it stands: only a new spec changes phase and conditions. Asked after
            # the reads, since a handler may refuse the spec meanwhile.
            return herald.is_refused(body, generation) or (
                status.get("phase") == INVALID and observed() == generation
            )

        try:
            sale, room = await asyncio.to_thread(read_sale, name)
        except BACKEND_ERRORS as exc:
            if not refused():
                message = f"cannot reach Redis or PostgreSQL: {type(exc).__name__}: {exc}"
                _write(patch, status, unavailable_status(message, observed(), _now(), status))
            return
        if sale is None:
            return  # not loaded yet: the create handler (or its retry) does that
        if refused():
            # A sale loaded before the refused change keeps selling as it was: its figures
            # stay current.
            figures = {"stock": stock_document(sale.stock), "waitingRoom": room_document(room)}
            _write(patch, status, figures)
            op.metrics.record_sale(name, INVALID, sale.stock)
            return
        publish(body, name, sale, room, observed(), status, patch)

    @kopf.on.delete(*resource, id="cleanup", registry=registry, backoff=retry)
    async def sale_deleted(body: kopf.Body, name: str, logger: kopf.Logger, **_: Any) -> None:
        try:
            closed = await asyncio.to_thread(op.stock.close_sale, name)
            if closed.waiting:
                # Accepted reservations must reach SQL before their keys go: every 202
                # becomes an order. The sale is closed, so the outbox only shrinks.
                raise kopf.TemporaryError(
                    f"sale {name} closed; waiting for {closed.waiting} reservations "
                    "to reach PostgreSQL",
                    delay=retry,
                )
            removed = await asyncio.to_thread(op.stock.remove_sale, name)
        except BACKEND_ERRORS as exc:
            raise kopf.TemporaryError(
                f"cannot reach Redis: {type(exc).__name__}: {exc}", delay=retry
            ) from exc
        op.metrics.forget_sale(name)
        herald.forget(body)
        loaded.pop(_key(body), None)
        op.rescale.set()
        logger.info(f"sale {name} ended and {removed} Redis keys removed; orders stay in SQL")

    @kopf.on.probe(id="redis", registry=registry)
    async def redis_reachable(**_: Any) -> bool:
        # Reported, not enforced: a restart of the operator would not bring Redis back.
        try:
            return bool(await asyncio.to_thread(op.stock.ping))
        except BACKEND_ERRORS:
            return False


def _now() -> datetime:
    return datetime.now(UTC)
