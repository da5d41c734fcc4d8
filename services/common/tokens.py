"""Access tokens: JWTs signed by auth with its private key, verified by the gateway with the public one.

Claims: ``sub`` (user id), ``email``, ``sid`` (the sign-in session, i.e. the
refresh-token family), ``typ=access``, ``iss``, ``aud``, ``iat``, ``exp``.
Verification accepts only the algorithm of the configured key (EdDSA or RS256;
never ``none`` or HS256), requires every claim, and allows ``JWT_LEEWAY_SECONDS``
(default 30) of clock skew between auth and the gateway.
"""
from __future__ import annotations

import time
import uuid

import jwt

from . import config, keys
from .errors import NotAuthorized

ISSUER = "ticketing-auth"
AUDIENCE = "ticketing-api"
REQUIRED = ["exp", "iat", "sub", "email", "iss", "aud", "typ"]


def leeway() -> int:
    return config.env_int("JWT_LEEWAY_SECONDS", 30)


def issue_access_token(user_id: str, email: str, *, session_id: str | None = None, ttl: int | None = None,
                       now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "email": email,
        "sid": session_id,
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": issued,
        "exp": issued + (ttl if ttl is not None else config.access_token_ttl()),
    }
    key = keys.private_key()
    return jwt.encode(claims, key, algorithm=keys.algorithm_of(key))


def access_claims(token: str) -> dict:
    """Every claim of a valid access token, else raise NotAuthorized."""
    key = keys.public_key()
    try:
        claims = jwt.decode(token, key, algorithms=[keys.algorithm_of(key)], audience=AUDIENCE, issuer=ISSUER,
                            leeway=leeway(), options={"require": REQUIRED})
    except jwt.PyJWTError as exc:
        raise NotAuthorized() from exc
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise NotAuthorized()
    return claims


def verify_access_token(token: str) -> dict:
    """Return ``{"id", "email"}`` of a valid access token, else raise NotAuthorized."""
    claims = access_claims(token)
    return {"id": claims["sub"], "email": claims["email"]}
