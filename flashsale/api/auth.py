"""Bearer JWT (HS256) verification, with a small cache of tokens already verified.

A flash sale sees the same few tokens many times a second; checking the signature once
per token (and `exp` on every use) takes the HMAC off the hot path. Only tokens found
valid are cached: a refused token is checked again, and refused again, on every use.

A token must carry `sub` (a user id as `flashsale.ids` defines it) and `exp`: a token
without an expiry would be good forever. With a lifetime cap, a token whose `exp` lies
further ahead than the cap (plus LEEWAY_SECONDS for clocks that disagree) is refused."""

from __future__ import annotations

import time

import jwt

from flashsale.api.errors import ApiError
from flashsale.ids import user_id_problem

LEEWAY_SECONDS = 30


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})


class TokenVerifier:
    def __init__(
        self,
        secret: str,
        cache_size: int = 65536,
        max_bytes: int = 4096,
        max_lifetime_seconds: float = 0,
    ) -> None:
        self._secret = secret
        self._cache_size = cache_size
        self._max_bytes = max_bytes
        self._max_lifetime = max_lifetime_seconds  # 0: no cap
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
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("token not yet valid") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        sub = claims["sub"]
        problem = user_id_problem(sub)
        if problem is not None:
            raise _unauthorized(f"invalid token subject: {problem}")
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise _unauthorized("invalid token: exp must be a number")
        if self._max_lifetime and exp > time.time() + self._max_lifetime + LEEWAY_SECONDS:
            raise _unauthorized(
                f"token lifetime exceeds the limit of {self._max_lifetime:g} seconds"
            )
        return sub, float(exp)


def issue_token(secret: str, user: str, ttl_seconds: int = 3600) -> str:
    """A token for `user` valid `ttl_seconds` from now (callers check both first)."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")
