"""GET /wait/{sale}: the waiting-room page for shoppers, with its script, style and icon.

The page is the same static HTML for every sale; its script (flashsale/api/page/page.js)
reads the sale from the path and the shopper's token from the URL fragment
(`/wait/tv-drop#token=...`), which a browser never sends to a server. It then talks to the
API only: join, poll every `poll_after_seconds`, buy once admitted, read the order.

Everything the page loads is served here (no third-party host, no inline script or style),
so its Content-Security-Policy allows this origin alone. No answer carries a Referer
onwards (`Referrer-Policy: no-referrer`), none is framed, none is MIME-sniffed.

The script and style are fetched as `/wait/assets/<file>?v=<hash of the file>`: a browser
or a shared cache keeps them for a year, and a new release changes the address. The page
itself is cached for a minute only, so a release reaches shoppers quickly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from flashsale.api.errors import ApiError, ErrorBody, error_doc
from flashsale.spec import is_valid_sale_name

router = APIRouter(tags=["waiting room"])

ASSETS_URL = "/wait/assets"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
# On every answer of this module.
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = SAFE_HEADERS | {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "public, max-age=60",
}
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # the first 16 hex digits of the body's SHA-256


def _load() -> tuple[bytes, dict[str, Asset]]:
    """The page, with the addresses of the current script, style and icon written in, and
    those files. Read once: a package missing them fails at start-up, not on a shopper."""
    folder = resources.files("flashsale.api").joinpath("page")
    assets = {}
    html = folder.joinpath("wait.html").read_text(encoding="utf-8")
    for name, media_type in MEDIA_TYPES.items():
        body = folder.joinpath(name).read_bytes()
        version = hashlib.sha256(body).hexdigest()[:16]
        assets[name] = Asset(body, media_type, version)
        html = html.replace("{" + name + "}", f"{ASSETS_URL}/{name}?v={version}")
    return html.encode(), assets


PAGE, ASSETS = _load()


@router.get(
    "/wait/{sale}",
    response_class=HTMLResponse,
    responses={
        200: {"description": "The waiting-room page (the token goes in the URL fragment)"},
        # The page's own media type is HTML; its refusal is JSON, as everywhere else.
        404: {
            "description": error_doc("unknown_sale")["description"],
            "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
        },
    },
)
async def wait_page(sale: str) -> Response:
    """The shoppers' waiting-room page: open it as `/wait/{sale}#token=<JWT>`. It joins the
    waiting room, shows place, wait and chance live, and offers "Buy" once admitted."""
    if not is_valid_sale_name(sale):
        raise ApiError(404, "unknown_sale", "no such sale")
    return HTMLResponse(PAGE, headers=PAGE_HEADERS)


@router.get(ASSETS_URL + "/{name}", include_in_schema=False)
async def wait_asset(name: str, v: str | None = None) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    # Only the current version's address is kept for long: an old page asking for an
    # old version gets the current file, revalidated each time.
    cache = IMMUTABLE if v == asset.version else "no-cache"
    headers = SAFE_HEADERS | {"Cache-Control": cache}
    return Response(asset.body, media_type=asset.media_type, headers=headers)
