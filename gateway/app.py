"""The gateway: a Flask JSON API under /api that calls the services over nameko RPC."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from nameko.exceptions import RemoteError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import config, keys, web
from services.common.errors import ServiceUnavailable, TicketingError

from . import guards, openapi
from .api import health, orders, payments, tickets, users
from .http import DecimalJSONProvider
from .revocations import RevocationList
from .rpc import RpcPool

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
#: what a 503 tells clients to wait before trying again (seconds)
RETRY_AFTER_SECONDS = 2
#: a service's remote error of one of these types means "something it depends on is away":
#: 503, not 500 (services translate them themselves; this covers one that did not)
INFRASTRUCTURE_ERRORS = frozenset({
    "OperationalError", "InterfaceError", "DisconnectionError", "AdminShutdown", "ConnectionFailure",
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "TimeoutError", "RpcTimeout",
    "UnknownService", "RecoverableConnectionError", "ServiceUnavailable",
})


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.json_provider_class = DecimalJSONProvider
    app.json = DecimalJSONProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        COOKIE_SECURE=config.is_production(),
        NAMEKO=config.nameko_config(),
        RPC_TIMEOUT=float(config.env("RPC_TIMEOUT", "5")),
        PROXY_COUNT=config.env_int("PROXY_COUNT", 0),
        PUBLIC_URL=config.public_url(),
        REVOCATION_POLL_SECONDS=float(config.env("REVOCATION_POLL_SECONDS", "1")),
    )
    app.config.update(overrides or {})
    keys.public_key()  # refuse to start without a proper verifying key, in every environment

    if app.config["PROXY_COUNT"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_COUNT"], x_proto=1, x_host=1)
    app.rpc = app.config.get("RPC_POOL") or RpcPool(app.config["NAMEKO"], timeout=app.config["RPC_TIMEOUT"])
    app.revocations = RevocationList(app.rpc, app.config["REVOCATION_POLL_SECONDS"])
    app.revocations.start()

    web.instrument(app, "gateway")
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)

    @app.get("/api/openapi.json")
    def openapi_document():
        return jsonify(openapi.document())

    _register_errors(app)
    return app


def _blueprints():
    return [users.bp, tickets.bp, orders.bp, payments.bp, health.bp]


def error_response(message: str, status: int, field: str | None = None):
    error = {"message": message}
    if field:
        error["field"] = field
    return jsonify({"errors": [error]}), status


def _register_errors(app: Flask) -> None:
    def make_error_response(exc: TicketingError):
        response = jsonify({"errors": exc.errors()})
        if exc.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    app.make_error_response = make_error_response

    @app.before_request
    def reject_large_bodies():
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise RequestEntityTooLarge()

    app.before_request(guards.refuse_cross_site_and_non_json)

    @app.errorhandler(TicketingError)
    def ticketing_error(exc: TicketingError):
        return make_error_response(exc), exc.status

    @app.errorhandler(RemoteError)
    def remote_error(exc: RemoteError):
        if exc.exc_type in INFRASTRUCTURE_ERRORS:
            log.warning("a service could not reach what it depends on: %s", exc.exc_type)
            return ticketing_error(ServiceUnavailable())
        log.error("a service failed: %s", exc)
        return error_response("Something went wrong", 500)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {404: "Not found", 405: "Method not allowed", 413: "Request body is too large (max 1 MiB)"}
        return error_response(messages.get(exc.code, exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response("Something went wrong", 500)
