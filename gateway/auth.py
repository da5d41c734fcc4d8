"""Who is calling: the access JWT (cookie or Bearer header), verified here without an RPC
(signature with auth's public key, claims, and the revocation list auth feeds us)."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from services.common import tokens
from services.common.errors import NotAuthorized

ACCESS_COOKIE = "ticketing_access"
REFRESH_COOKIE = "ticketing_refresh"


def current_user() -> dict | None:
    if "current_user" not in g:
        token = request.cookies.get(ACCESS_COOKIE)
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        user = None
        if token:
            try:
                claims = tokens.access_claims(token, leeway=current_app.extensions["settings"].jwt_leeway_seconds)
                if not current_app.revocations.is_revoked(claims):
                    user = {"id": claims["sub"], "email": claims["email"]}
            except NotAuthorized:
                user = None
        g.current_user = user
    return g.current_user


def require_user(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user = current_user()
        if user is None:
            raise NotAuthorized()
        return view(user, *args, **kwargs)

    return wrapper


def set_auth_cookies(response, session: dict):
    secure = current_app.config["COOKIE_SECURE"]
    settings = current_app.extensions["settings"]
    response.set_cookie(ACCESS_COOKIE, session["accessToken"], max_age=settings.access_token_ttl,
                        httponly=True, samesite="Lax", secure=secure, path="/")
    response.set_cookie(REFRESH_COOKIE, session["refreshToken"], max_age=settings.refresh_token_ttl,
                        httponly=True, samesite="Lax", secure=secure, path="/")
    return response


def clear_auth_cookies(response):
    secure = current_app.config["COOKIE_SECURE"]
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="Lax", secure=secure)
    return response
