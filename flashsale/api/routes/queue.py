"""The waiting room's endpoints, as documented: join (POST) and poll (GET)
/v1/sales/{sale}/queue. Well-formed requests are answered by the fast path before they
get here (flashsale/api/fastpath.py); both answer through flashsale/api/queueing.py."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from flashsale.api.deps import CurrentUser, ServicesDep
from flashsale.api.errors import error_doc
from flashsale.api.queueing import join_room, poll_room
from flashsale.api.schemas import QueueOut

router = APIRouter(tags=["waiting room"])


@router.post(
    "/v1/sales/{sale}/queue",
    status_code=202,
    response_model=QueueOut,
    responses={
        404: error_doc("unknown_sale"),
        409: error_doc("not_open", "sold_out", "ended", "no_waiting_room"),
        401: error_doc("unauthorized"),
        503: error_doc("unavailable"),
    },
)
async def join(sale: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Join the sale's waiting room; joining again returns the same place."""
    body = await join_room(services, sale, user)
    return Response(body, status_code=202, media_type="application/json")


@router.get(
    "/v1/sales/{sale}/queue",
    response_model=QueueOut,
    responses={
        404: error_doc("unknown_sale", "not_in_queue"),
        409: error_doc("ended", "no_waiting_room"),
        401: error_doc("unauthorized"),
        503: error_doc("unavailable"),
    },
)
async def poll(sale: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Your place in the waiting room now: waiting, admitted (until when), expired or
    sold_out."""
    body = await poll_room(services, sale, user)
    return Response(body, media_type="application/json")
