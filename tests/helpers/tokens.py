"""Tokens written by hand, for requests PyJWT would not make: claims sent exactly as
written (escapes, lone surrogates, `exp` as text), other algorithms, a wrong secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

from tests.conftest import JWT_SECRET

HS256 = '{"alg":"HS256","typ":"JWT"}'


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(claims: str, secret: str = JWT_SECRET, header: str = HS256) -> str:
    """A token of the JSON text `claims` under `header`, signed with HS512 when the header
    names it and HS256 otherwise."""
    signing_input = _b64(header.encode()) + "." + _b64(claims.encode())
    digest = hashlib.sha512 if '"HS512"' in header else hashlib.sha256
    mac = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + _b64(mac)
