"""Cross-site request forgery guards of the JSON API.

Auth travels in cookies, so a page on another site could make a browser send
state-changing requests with them. Two rules stop that without tokens:

* a state-changing request (POST, PUT, PATCH, DELETE) must say
  ``Content-Type: application/json`` (415 otherwise; a DELETE without a body is
  fine). An HTML form can only send ``text/plain``, urlencoded or multipart,
  and a cross-site ``fetch`` with JSON needs a CORS preflight, which we never
  grant;
* when the browser says where the request comes from, it must be us:
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin``
  other than this host's (or ``PUBLIC_URL``'s) answers 403.

Clients that are not browsers (the frontend's server-side calls, curl, tests)
send neither header and are not affected.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request

from services.common.errors import Forbidden, UnsupportedMediaType

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins() -> set[str]:
    origins = {origin_of(request.host_url)}
    public = current_app.config.get("PUBLIC_URL")
    if public:
        origins.add(origin_of(public))
    return origins


def refuse_cross_site_and_non_json() -> None:
    """A ``before_request`` hook of the gateway."""
    if request.method not in STATE_CHANGING or request.routing_exception is not None:
        return  # reads, and routes that do not exist (404/405 say more than 415 would)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_SITE_FETCH:
        raise Forbidden("Cross-site requests are not allowed")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in allowed_origins():
        raise Forbidden("Cross-site requests are not allowed")
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding") is not None
    if (request.method != "DELETE" or has_body) and request.mimetype != "application/json":
        raise UnsupportedMediaType()
