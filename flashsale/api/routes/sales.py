"""GET /v1/sales/{sale}: phase and stock figures, no authentication."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flashsale.api.deps import ServicesDep
from flashsale.api.errors import ApiError, error_doc
from flashsale.api.schemas import SaleOut
from flashsale.sales import sale_status
from flashsale.spec import is_valid_sale_name

router = APIRouter(tags=["sales"])


@router.get("/v1/sales/{sale}", response_model=SaleOut, responses={404: error_doc("unknown_sale")})
def read_sale(sale: str, services: ServicesDep) -> dict[str, Any]:
    status = (
        sale_status(services.sessions, services.stock, sale) if is_valid_sale_name(sale) else None
    )
    if status is None:
        raise ApiError(404, "unknown_sale", "no such sale")
    return status.as_dict()
