"""Bearer JWTs: only a valid HS256 token signed with our secret is a user."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest

from tests.conftest import JWT_SECRET, Platform


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(header: dict[str, object], claims: dict[str, object]) -> str:
    """A token HMAC-signed with our secret whatever its header claims (for confusion)."""
    signing_input = _b64(header) + "." + _b64(claims)
    mac = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


NOW = int(time.time())
BAD_TOKENS = {
    "expired": jwt.encode({"sub": "u", "exp": NOW - 10}, JWT_SECRET, "HS256"),
    "not_yet_valid": jwt.encode(
        {"sub": "u", "nbf": NOW + 3600, "exp": NOW + 7200}, JWT_SECRET, "HS256"
    ),
    "wrong_secret": jwt.encode({"sub": "u", "exp": NOW + 60}, "another-secret-" * 3, "HS256"),
    "alg_none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"sub": "u"}) + ".",
    "hs512": jwt.encode({"sub": "u", "exp": NOW + 60}, JWT_SECRET, "HS512"),
    "missing_sub": jwt.encode({"exp": NOW + 60}, JWT_SECRET, "HS256"),
    "rs256_confusion": _signed({"alg": "RS256", "typ": "JWT"}, {"sub": "u", "exp": NOW + 60}),
    "numeric_sub": _signed({"alg": "HS256", "typ": "JWT"}, {"sub": 42, "exp": NOW + 60}),
    "empty_sub": _signed({"alg": "HS256", "typ": "JWT"}, {"sub": "", "exp": NOW + 60}),
    "garbage": "not.a.token",
    "huge": "a" * 20000,
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401(platform: Platform, client: httpx.AsyncClient, name: str) -> None:
    sale = platform.sale()
    r = await client.post(
        f"/v1/sales/{sale}/reservations", headers={"Authorization": f"Bearer {BAD_TOKENS[name]}"}
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert platform.remaining(sale) == 10


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
async def test_missing_or_malformed_header_is_401(
    platform: Platform, client: httpx.AsyncClient, header: str | None
) -> None:
    sale = platform.sale()
    headers = {"Authorization": header} if header is not None else {}
    r = await client.post(f"/v1/sales/{sale}/reservations", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert (await client.get("/v1/orders/x", headers=headers)).status_code == 401


async def test_cached_token_still_expires(platform: Platform, client: httpx.AsyncClient) -> None:
    sale = platform.sale(stock=10, perUserLimit=10)
    short = jwt.encode({"sub": "brief", "exp": int(time.time()) + 2}, JWT_SECRET, "HS256")
    headers = {"Authorization": f"Bearer {short}"}
    assert (await client.post(f"/v1/sales/{sale}/reservations", headers=headers)).status_code == 202
    time.sleep(2.5)
    r = await client.post(f"/v1/sales/{sale}/reservations", headers=headers)
    assert r.status_code == 401
