"""The HTTP side of logs and metrics, for the Flask apps (gateway and frontend).

:func:`instrument` gives every request a correlation id (the client's
``X-Request-ID`` if it is a sane token, else a new one), returns it in the
response's ``X-Request-ID``, logs one access line at INFO (errors the caller
made are answers, not failures) and times the request by route.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from . import logs, metrics

QUIET_PATHS = {"/api/healthz", "/api/readyz", "/healthz", "/readyz", "/metrics"}


def instrument(app: Flask, component: str) -> None:
    log = logging.getLogger(f"{component}.access")

    @app.before_request
    def _start():
        cid = logs.accept_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
        g._log_token = logs.start(correlation_id=cid)
        g._started = time.perf_counter()

    @app.after_request
    def _finish(response):
        cid = logs.correlation_id()
        if cid:
            response.headers[logs.REQUEST_ID_HEADER] = cid
        started = g.pop("_started", None)
        if started is None:
            return response
        seconds = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.HTTP_REQUEST_SECONDS.labels(component, request.method, route, str(response.status_code)).observe(
            seconds)
        if request.path not in QUIET_PATHS:
            user = g.get("current_user") or {}
            log.info("%s %s -> %s (%.1f ms)", request.method, request.path, response.status_code, seconds * 1000,
                     extra={"method": request.method, "path": request.path, "route": route,
                            "status": response.status_code, "duration_ms": round(seconds * 1000, 1),
                            **({"user_id": user["id"]} if user.get("id") else {})})
        return response

    @app.teardown_request
    def _clear(_exc=None):
        logs.reset(g.pop("_log_token", None))
