"""Bearer JWT (HS256) verification, with a small cache of tokens already verified.

A flash sale sees the same few tokens many times a second; checking the signature once
per token (and `exp` on every use) takes the HMAC off the hot path."""

from __future__ import annotations

import time

import jwt

from flashsale.api.errors import ApiError

MAX_USER_ID = 255


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})


class TokenVerifier:
    def __init__(self, secret: str, cache_size: int = 65536, max_bytes: int = 4096) -> None:
        self._secret = secret
        self._cache_size = cache_size
        self._max_bytes = max_bytes
        self._cache: dict[str, tuple[str, float]] = {}

    def user_of(self, authorization: str | None) -> str:
        """The `sub` of a valid bearer token, or a 401."""
        if not authorization:
            raise _unauthorized("missing Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("expected Authorization: Bearer <token>")
        if len(token) > self._max_bytes:
            raise _unauthorized("token too large")
        cached = self._cache.get(token)
        if cached is not None:
            user, expires = cached
            if time.time() < expires:
                return user
            del self._cache[token]
            raise _unauthorized("token expired")
        user, expires = self._verify(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[token] = (user, expires)
        return user

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("token not yet valid") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID:
            raise _unauthorized("token subject must be a user id of 1 to 255 characters")
        exp = claims.get("exp")
        return sub, float(exp) if isinstance(exp, int | float) else float("inf")


def issue_token(secret: str, user: str, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")
