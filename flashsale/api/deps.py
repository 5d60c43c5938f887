"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flashsale.api.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# Declares the shoppers' scheme in the OpenAPI schema: /docs gets its Authorize button and
# every operation that needs a token its lock. It refuses nothing itself (auto_error=False):
# the verifier reads the header and answers every refusal, as the fast path does.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="`Authorization: Bearer <JWT>`, HS256, the user id in `sub`, with an `exp`.",
)


def current_user(
    services: ServicesDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    return services.verifier.user_of(authorization)


CurrentUser = Annotated[str, Depends(current_user)]
