"""The frontend's client of the gateway's JSON API.

One `Gateway` per incoming browser request (see `gateway()`): it carries the
browser's cookies to the gateway, keeps any cookie the gateway sets for the
rest of the request, and hands every Set-Cookie header back to the browser
(`after_request` in app.py). The access token lives in those cookies; the
frontend never reads it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import requests
from flask import current_app, g, request

from services.common import logs

REFRESH_PATH = "/api/users/refresh"
# Calls where a 401 means "wrong password", not "access token expired".
NO_REFRESH_PATHS = {REFRESH_PATH, "/api/users/signin", "/api/users/signup", "/api/users/signout"}


class GatewayUnavailable(Exception):
    """The gateway is down, too slow, or failed on its side (5xx)."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


class ApiError(Exception):
    """The gateway refused the call (4xx) with `{"errors": [{message, field?}]}`."""

    def __init__(self, status: int, errors: list[dict]):
        self.status = status
        self.errors = errors or [{"message": "Something went wrong."}]
        super().__init__(f"{status}: {self.messages()}")

    def messages(self) -> list[str]:
        return [e.get("message", "") for e in self.errors]

    def field_errors(self) -> dict[str, list[str]]:
        by_field: dict[str, list[str]] = {}
        for e in self.errors:
            if e.get("field"):
                by_field.setdefault(e["field"], []).append(e.get("message", "Invalid value"))
        return by_field

    def general_errors(self) -> list[str]:
        return [e.get("message", "") for e in self.errors if not e.get("field")]


@dataclass
class ApiResponse:
    status: int
    data: object
    headers: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)

    def next_cursor(self) -> str | None:
        """The `cursor` of the Link rel="next" page, if there is one."""
        url = self.links.get("next", {}).get("url")
        if not url:
            return None
        return (parse_qs(urlsplit(url).query).get("cursor") or [None])[0]


class _NoCookies(DefaultCookiePolicy):
    """The shared HTTP session must never remember one user's cookies for the next."""

    def set_ok(self, cookie, request):  # noqa: D401 - cookiejar API
        return False


def make_http_session() -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(_NoCookies())
    session.trust_env = False  # a proxy variable must not reroute calls to our own gateway
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def encode_json(body: dict) -> bytes:
    """JSON with Decimal money written as an exact JSON number (never through a float)."""

    def literal(value):
        if isinstance(value, Decimal):
            return format(value, "f")
        return json.dumps(value)

    return ("{" + ", ".join(f"{json.dumps(k)}: {literal(v)}" for k, v in body.items()) + "}").encode()


def _set_cookie_headers(response: requests.Response) -> list[str]:
    raw_headers = getattr(response.raw, "headers", None)
    if raw_headers is not None and hasattr(raw_headers, "getlist"):
        return list(raw_headers.getlist("Set-Cookie"))
    value = response.headers.get("Set-Cookie")
    return [value] if value else []


def _parse_set_cookie(header: str) -> tuple[str, str, bool]:
    """(name, value, deleted) of one Set-Cookie header."""
    first, *attributes = header.split(";")
    name, _, value = first.strip().partition("=")
    deleted = value == ""
    for attribute in attributes:
        key, _, arg = attribute.strip().partition("=")
        key = key.lower()
        if key == "max-age":
            try:
                deleted = deleted or int(arg) <= 0
            except ValueError:
                pass
        elif key == "expires":
            try:
                deleted = deleted or parsedate_to_datetime(arg) <= datetime.now(timezone.utc)
            except (TypeError, ValueError):
                pass
    return name.strip(), value.strip(), deleted


class Gateway:
    def __init__(self, base_url, http, cookies, timeout, budget, forwarded_for=None, proxy_token=None):
        self.base_url = base_url
        self.http = http
        self.cookies = dict(cookies)
        self.timeout = timeout
        self.deadline = time.monotonic() + budget
        self.forwarded_for = forwarded_for
        self.proxy_token = proxy_token
        self.set_cookie_headers: list[str] = []
        self._refresh_tried = False
        self._current_user_loaded = False
        self._current_user = None

    # -- HTTP -------------------------------------------------------------
    def get(self, path, params=None):
        return self.call("GET", path, params=params)

    def post(self, path, body=None, timeout=None, idempotency_key=None):
        return self.call("POST", path, body=body if body is not None else {}, timeout=timeout,
                         idempotency_key=idempotency_key)

    def put(self, path, body):
        return self.call("PUT", path, body=body)

    def delete(self, path):
        return self.call("DELETE", path)

    def call(self, method, path, params=None, body=None, timeout=None, idempotency_key=None) -> ApiResponse:
        """Send one call; raise ApiError for 4xx and GatewayUnavailable for the rest."""
        response = self._send(method, path, params, body, timeout, idempotency_key)
        if response.status_code == 401 and self._may_refresh(path) and self.refresh():
            response = self._send(method, path, params, body, timeout, idempotency_key)
        return self._result(response)

    def _send(self, method, path, params, body, timeout=None, idempotency_key=None) -> requests.Response:
        remaining = self.deadline - time.monotonic()
        if timeout is None:
            if remaining <= 0:
                raise GatewayUnavailable("no time left for this page")
            timeout = min(self.timeout, remaining)
        headers = {"Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
            if self.proxy_token:  # `ticketing up`: proves the header comes from us, not a browser
                headers["X-Ticketing-Frontend"] = self.proxy_token
        if logs.correlation_id():  # the page's log lines and the API's share one id
            headers[logs.REQUEST_ID_HEADER] = logs.correlation_id()
        data = None
        if body is not None:
            data = encode_json(body)
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=(min(2.0, timeout), timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"{method} {path}: {exc.__class__.__name__}") from exc
        self._remember_cookies(response)
        return response

    def _remember_cookies(self, response):
        for header in _set_cookie_headers(response):
            self.set_cookie_headers.append(header)
            name, value, deleted = _parse_set_cookie(header)
            if not name:
                continue
            if deleted:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def _result(self, response: requests.Response) -> ApiResponse:
        status = response.status_code
        if status >= 500:
            raise GatewayUnavailable(f"gateway answered {status}", status)
        data = None
        if response.content:
            try:
                data = json.loads(response.content, parse_float=Decimal)
            except ValueError as exc:
                raise GatewayUnavailable(f"gateway answered {status} with a body that is not JSON", status) from exc
        if status >= 400:
            errors = data.get("errors") if isinstance(data, dict) else None
            raise ApiError(status, errors if isinstance(errors, list) else [])
        return ApiResponse(status, data, dict(response.headers), response.links)

    # -- auth -------------------------------------------------------------
    def _may_refresh(self, path) -> bool:
        return not self._refresh_tried and bool(self.cookies) and path not in NO_REFRESH_PATHS

    def refresh(self):
        """Swap the refresh cookie for new auth cookies, at most once per browser request."""
        self._refresh_tried = True
        response = self._send("POST", REFRESH_PATH, None, {})
        if response.status_code == 200:
            try:
                user = json.loads(response.content)
            except ValueError:
                return None
            if isinstance(user, dict) and user.get("id"):
                self._current_user, self._current_user_loaded = user, True
                return user
        if response.status_code >= 500:
            raise GatewayUnavailable(f"refresh answered {response.status_code}", response.status_code)
        return None

    def current_user(self):
        """{id, email} of the signed-in user, or None."""
        if not self._current_user_loaded:
            user = None
            if self.cookies:  # no cookies: certainly signed out, spare the call
                data = self.get("/api/users/currentuser").data or {}
                user = data.get("currentUser")
                if user is None and self._may_refresh("/api/users/currentuser"):
                    user = self.refresh()
            self._current_user, self._current_user_loaded = user, True
        return self._current_user

    def forget_user(self):
        self._current_user, self._current_user_loaded = None, True


def browser_cookies(header: str, exclude: str) -> dict[str, str]:
    """The browser's cookies exactly as sent (values not unquoted), minus the frontend's own."""
    cookies = {}
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name and name != exclude:
            cookies[name] = value
    return cookies


def gateway() -> Gateway:
    """The Gateway of the current browser request."""
    if "gateway" not in g:
        config = current_app.config
        own_cookie = config["SESSION_COOKIE_NAME"]
        g.gateway = Gateway(
            base_url=config["GATEWAY_URL"],
            http=current_app.extensions["gateway_http"],
            cookies=browser_cookies(request.headers.get("Cookie", ""), exclude=own_cookie),
            timeout=config["GATEWAY_TIMEOUT"],
            budget=config["GATEWAY_PAGE_BUDGET"],
            forwarded_for=request.remote_addr,
            proxy_token=config.get("GATEWAY_PROXY_TOKEN"),
        )
    return g.gateway
