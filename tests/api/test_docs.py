"""The documentation pages work without internet: every file /docs and /redoc load is
served by the API itself, and the schema declares the shoppers' bearer scheme so /docs
has an Authorize button and a lock on each operation that needs a token."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.conftest import Platform

# src="..." and href="..." in the page, and the schema's url: '...' in Swagger UI's set-up.
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")
# Operations a shopper calls with a token (DESIGN.md, HTTP API).
PROTECTED = {
    ("post", "/v1/sales/{sale}/reservations"),
    ("post", "/v1/sales/{sale}/queue"),
    ("get", "/v1/sales/{sale}/queue"),
    ("get", "/v1/orders/{order_id}"),
    ("post", "/v1/orders/{order_id}/payment"),
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_everything_from_the_api_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", r.text), "the page names another host"
    assets = [a or b for a, b in ASSET.findall(r.text)]
    assert any(a.endswith(".js") for a in assets), assets
    page_url = str(client.base_url.join(page))
    for asset in assets:
        url = urljoin(page_url, asset)
        assert urlsplit(url).netloc == urlsplit(page_url).netloc, asset
        answer = await client.get(url)
        assert answer.status_code == 200, asset
        assert answer.content, asset


async def test_the_schema_declares_the_bearer_scheme_on_the_protected_operations(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    bearer = [n for n, s in schemes.items() if (s["type"], s["scheme"]) == ("http", "bearer")]
    assert len(bearer) == 1 and schemes[bearer[0]]["bearerFormat"] == "JWT"
    secured = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if {bearer[0]: []} in operation.get("security", [])
    }
    assert secured == PROTECTED
    for method, path in PROTECTED:
        assert "401" in schema["paths"][path][method]["responses"]
    # The Authorization header is the scheme's, not a parameter of its own.
    for operations in schema["paths"].values():
        for operation in operations.values():
            names = {p["name"].lower() for p in operation.get("parameters", [])}
            assert "authorization" not in names


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "missing Authorization: Bearer <token>"),
        ("Basic dXNlcjpwYXNz", "expected Authorization: Bearer <token>"),
        ("Bearer", "expected Authorization: Bearer <token>"),
    ],
)
async def test_401_answers_are_the_verifiers_own(
    platform: Platform, client: httpx.AsyncClient, header: str | None, detail: str
) -> None:
    """The scheme refuses nothing itself: the same JSON 401 with `WWW-Authenticate:
    Bearer` on the routes and on the reservation fast path."""
    sale = platform.sale()
    headers = {"Authorization": header} if header is not None else {}
    answers = [
        await client.post(f"/v1/sales/{sale}/reservations", headers=headers, json={}),
        await client.get("/v1/orders/x", headers=headers),
        await client.post("/v1/orders/x/payment", headers=headers),
    ]
    for r in answers:
        assert r.status_code == 401, r.text
        assert r.json() == {"error": "unauthorized", "detail": detail}
        assert r.headers["www-authenticate"] == "Bearer"
    assert platform.remaining(sale) == 10
