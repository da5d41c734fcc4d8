"""Access tokens: JWTs signed by auth with its private key, verified by the gateway with the public one.

Claims: ``sub`` (user id), ``email``, ``sid`` (the sign-in session, i.e. the
refresh-token family), ``typ=access``, ``iss``, ``aud``, ``iat``, ``exp``.
Verification accepts only the algorithm of the configured key (EdDSA or RS256;
never ``none`` or HS256), requires every claim, and allows ``JWT_LEEWAY_SECONDS``
(default 30) of clock skew between auth and the gateway. The lifetime and the
leeway are the callers' settings (:mod:`services.common.settings`), passed in;
without them, the settings' defaults.
"""
from __future__ import annotations

import time
import uuid

import jwt

from . import keys
from .errors import NotAuthorized
from .settings import CommonSettings

ISSUER = "ticketing-auth"
AUDIENCE = "ticketing-api"
REQUIRED = ["exp", "iat", "sub", "email", "iss", "aud", "typ"]
#: ``ACCESS_TOKEN_TTL`` and ``JWT_LEEWAY_SECONDS`` when the caller does not say
DEFAULT_TTL = CommonSettings.access_token_ttl
DEFAULT_LEEWAY = CommonSettings.jwt_leeway_seconds


def issue_access_token(user_id: str, email: str, *, session_id: str | None = None, ttl: int = DEFAULT_TTL,
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
        "exp": issued + ttl,
    }
    key = keys.private_key()
    return jwt.encode(claims, key, algorithm=keys.algorithm_of(key))


def access_claims(token: str, leeway: int = DEFAULT_LEEWAY) -> dict:
    """Every claim of a valid access token (``leeway`` seconds of clock skew allowed), else raise NotAuthorized."""
    key = keys.public_key()
    try:
        claims = jwt.decode(token, key, algorithms=[keys.algorithm_of(key)], audience=AUDIENCE, issuer=ISSUER,
                            leeway=leeway, options={"require": REQUIRED})
    except jwt.PyJWTError as exc:
        raise NotAuthorized() from exc
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise NotAuthorized()
    return claims


def verify_access_token(token: str) -> dict:
    """Return ``{"id", "email"}`` of a valid access token, else raise NotAuthorized."""
    claims = access_claims(token)
    return {"id": claims["sub"], "email": claims["email"]}
