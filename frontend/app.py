"""WSGI app factory of the frontend: `create_app(config)`.

Served by the lead's CLI (`ticketing run frontend`, or mounted at / by
`ticketing run web` / `ticketing up`). Every page is rendered here from the
gateway's JSON API; see docs/frontend.md.
"""
from __future__ import annotations

import logging
import secrets

from flask import Flask, g, redirect, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import web

from .settings import FrontendSettings, flask_config
from .api import ApiError, GatewayUnavailable, gateway, make_http_session
from .money import format_money
from .views import auth, orders, tickets
from .views.common import new_request_key, signin_url

log = logging.getLogger(__name__)

csrf = CSRFProtect()

ERROR_PAGES = {
    400: ("Something is wrong with that request", "Please go back and try again."),
    403: ("That is not yours", "You can only see and change your own tickets and orders."),
    404: ("Page not found", "There is nothing here. The link may be old, or the ticket or order may not exist."),
    405: ("Not allowed", "That action is not possible on this page."),
    409: ("That is no longer possible", "Its state changed in the meantime. Reload the page to see where it stands."),
    413: ("Too much data", "What you sent is too large."),
    429: ("Too many attempts", "Please wait a minute before you try again."),
    500: ("Something went wrong on our side", "Sorry about that. Please try again in a moment."),
    503: (
        "The marketplace is not answering right now",
        "Our servers are busy or down for a moment. Nothing was lost: please try again in a few seconds.",
    ),
}


def create_app(config: dict | None = None) -> Flask:
    """The frontend, with its settings (:class:`~frontend.settings.FrontendSettings`) read once, from
    ``config`` first and then the environment; ``config``'s other keys go to Flask's config as they are."""
    app = Flask(__name__)
    config = config or {}
    settings = FrontendSettings.load(config)
    app.extensions["settings"] = settings
    app.config.update(flask_config(settings))
    app.config.update({key: value for key, value in config.items() if key not in FrontendSettings.names()})
    app.extensions["gateway_http"] = app.config.get("GATEWAY_HTTP") or make_http_session()

    proxies = settings.proxy_count
    if proxies:
        # Behind nginx / an Ingress: the browser's address (forwarded to the gateway for
        # sign-in throttling) is the one the trusted proxy saw.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=1, x_host=1)

    web.instrument(app, "frontend")
    csrf.init_app(app)
    app.register_blueprint(tickets.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(orders.bp)

    app.jinja_env.filters["money"] = format_money
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.get("/healthz")
    @csrf.exempt
    def healthz():
        # Liveness only: the process answers. It never asks the gateway.
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}

    # a global, not a context variable: the form macros are imported without the context
    app.jinja_env.globals["form_request_key"] = new_request_key

    @app.context_processor
    def template_helpers():
        return {
            "current_user": _current_user_or_none,
            "gateway_down": g.get("gateway_down", False),
            "csp_nonce": _csp_nonce,
            "stripe_publishable_key": app.config.get("STRIPE_PUBLISHABLE_KEY"),
            "test_mode": not app.config.get("STRIPE_PUBLISHABLE_KEY"),
        }

    @app.after_request
    def finish(response):
        gw = g.get("gateway")
        if gw is not None:
            # Auth cookies the gateway set or cleared go back to the browser as they were.
            for header in gw.set_cookie_headers:
                response.headers.add("Set-Cookie", header)
        _security_headers(app, response)
        return response

    _register_error_handlers(app)
    return app


def _current_user_or_none():
    """For the header: never let the header itself break a page."""
    if g.get("gateway_down"):
        return None
    try:
        return gateway().current_user()
    except (GatewayUnavailable, ApiError):
        g.gateway_down = True
        return None


def _csp_nonce():
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _security_headers(app, response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        # Pages depend on who is signed in: no shared or back-button caches of them.
        response.headers["Cache-Control"] = "no-store"
        stripe = bool(app.config.get("STRIPE_PUBLISHABLE_KEY"))
        script_src = ["'self'"]
        if "csp_nonce" in g:
            script_src.append(f"'nonce-{g.csp_nonce}'")
        if stripe:
            script_src.append("https://js.stripe.com")
        policy = [
            "default-src 'self'",
            "script-src " + " ".join(script_src),
            "style-src 'self'",
            "img-src 'self' data:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
        if stripe:
            policy += [
                "frame-src https://js.stripe.com https://hooks.stripe.com",
                "connect-src 'self' https://api.stripe.com",
            ]
        response.headers["Content-Security-Policy"] = "; ".join(policy)


def render_error(status: int, title: str | None = None, message: str | None = None, **extra):
    default_title, default_message = ERROR_PAGES.get(status, ERROR_PAGES[500])
    return (
        render_template(
            "errors/error.html",
            status=status,
            title=title or default_title,
            message=message or default_message,
            **extra,
        ),
        status,
    )


def _register_error_handlers(app):
    @app.errorhandler(GatewayUnavailable)
    def gateway_unavailable(exc):
        log.warning("gateway unavailable on %s %s: %s", request.method, request.path, exc)
        g.gateway_down = True
        order_id = getattr(exc, "order_id", None)
        if order_id:
            return render_error(
                503,
                title="We could not confirm your payment yet",
                message="The payment service did not answer in time. Check your order before you try "
                "again: an order is never charged twice.",
                order_id=order_id,
            )
        retry = request.full_path.rstrip("?") if request.method == "GET" else None
        return render_error(503, retry_url=retry)

    @app.errorhandler(ApiError)
    def api_error(exc):
        # What a view did not handle itself: the usual meaning of each status.
        if exc.status == 401:
            target = request.full_path.rstrip("?") if request.method == "GET" else request.referrer
            return redirect(signin_url(target))
        status = exc.status if exc.status in ERROR_PAGES else 400
        message = " ".join(m for m in exc.messages() if m) or None
        if status in (403, 404):
            message = None  # our wording is friendlier than the API's terse one
        return render_error(status, message=message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return render_error(
            400,
            title="This form has expired",
            message="For your security, forms must be sent from this site within your session. "
            "Go back, reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code is not None and exc.code < 400:
            return exc
        return render_error(exc.code or 500)

    @app.errorhandler(InternalServerError)
    def unexpected(exc):
        # Flask has logged the traceback; the browser gets our page, never the traceback.
        g.gateway_down = True  # don't risk a second failure while drawing the header
        return render_error(500)
