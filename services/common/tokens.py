"""Access tokens (JWT, HS256) issued by auth and verified locally by the gateway."""
from __future__ import annotations

import time

import jwt

from . import config
from .errors import NotAuthorized

ALGORITHM = "HS256"


def issue_access_token(user_id: str, email: str, *, ttl: int | None = None, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": user_id,
        "email": email,
        "typ": "access",
        "iat": issued,
        "exp": issued + (ttl if ttl is not None else config.access_token_ttl()),
    }
    return jwt.encode(claims, config.jwt_key(), algorithm=ALGORITHM)


def verify_access_token(token: str) -> dict:
    """Return ``{"id", "email"}`` of a valid access token, else raise NotAuthorized."""
    try:
        claims = jwt.decode(
            token, config.jwt_key(), algorithms=[ALGORITHM], options={"require": ["exp", "sub", "email"]}
        )
    except jwt.PyJWTError as exc:
        raise NotAuthorized() from exc
    if claims.get("typ") != "access":
        raise NotAuthorized()
    return {"id": claims["sub"], "email": claims["email"]}
