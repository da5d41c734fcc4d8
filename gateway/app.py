"""The gateway: a Flask JSON API under /api that calls the services over nameko RPC."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from nameko.exceptions import RemoteError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import keys, web
from services.common.errors import ServiceUnavailable, TicketingError

from . import guards, openapi
from .api import health, orders, payments, tickets, users
from .http import DecimalJSONProvider
from .revocations import RevocationList
from .rpc import RpcPool
from .settings import GatewaySettings

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
    """The gateway, with its settings (:class:`~gateway.settings.GatewaySettings`) read once, from
    ``overrides`` first and then the environment; ``overrides``' other keys go to Flask's config."""
    app = Flask(__name__)
    app.json_provider_class = DecimalJSONProvider
    app.json = DecimalJSONProvider(app)
    overrides = overrides or {}
    settings = GatewaySettings.load(overrides)
    app.extensions["settings"] = settings
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        COOKIE_SECURE=settings.is_production,
        NAMEKO=settings.nameko_config(),
        PUBLIC_URL=settings.public_url,
    )
    app.config.update({key: value for key, value in overrides.items() if key not in GatewaySettings.names()})
    keys.public_key()  # refuse to start without a proper verifying key, in every environment

    if settings.proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=1, x_host=1)
    app.rpc = app.config.get("RPC_POOL") or RpcPool(app.config["NAMEKO"], timeout=settings.rpc_timeout)
    app.revocations = RevocationList(app.rpc, settings.revocation_poll_seconds,
                                     horizon=settings.access_token_ttl + settings.jwt_leeway_seconds)
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
