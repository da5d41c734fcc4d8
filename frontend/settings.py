"""The frontend's settings (see :mod:`services.common.settings`), loaded once by ``create_app``.

``create_app(config)`` reads them from ``config`` first (tests point GATEWAY_URL at
a fake gateway this way), then the environment; :func:`flask_config` turns them
into the Flask app's config.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.common.config import require_secret
from services.common.settings import CommonSettings, at_least_one, not_negative, positive, setting


@dataclass(frozen=True)
class FrontendSettings(CommonSettings):
    # `ticketing up` serves gateway and frontend on one origin, so by default the frontend
    # reaches the gateway on the same port.
    gateway_url: str | None = setting(None, "where the frontend finds the API (default: http://127.0.0.1:$PORT)")
    # A slow gateway gives a friendly page, not a hang.
    gateway_timeout: float = setting(4.0, "seconds to wait for one gateway call", check=positive)
    gateway_page_budget: float = setting(6.0, "seconds for all the gateway calls of one page together",
                                         check=positive)
    payment_timeout: float = setting(15.0, "seconds to wait for a charge (it talks to the card processor)",
                                     check=positive)
    secret_key: str | None = setting(None, "signs sessions and CSRF tokens: required, >= 32 bytes, no placeholder",
                                     secret=True)
    stripe_publishable_key: str | None = setting(None, "enables Stripe Elements on the pay form")
    tickets_page_size: int = setting(24, "tickets on one page of the list", check=at_least_one)
    proxy_count: int = setting(0, "trusted reverse proxies in front of the frontend (the browser's address)",
                               check=not_negative)

    def __post_init__(self):
        super().__post_init__()
        # a missing, placeholder or short SECRET_KEY stops the frontend in every environment
        require_secret("SECRET_KEY", self.secret_key)
        self._derive("gateway_url", (self.gateway_url or f"http://127.0.0.1:{self.port}").rstrip("/"))


def flask_config(settings: FrontendSettings) -> dict:
    """The Flask config of the frontend's app."""
    return {
        "GATEWAY_URL": settings.gateway_url,
        "GATEWAY_TIMEOUT": settings.gateway_timeout,
        "GATEWAY_PAGE_BUDGET": settings.gateway_page_budget,
        "PAYMENT_TIMEOUT": settings.payment_timeout,
        "SECRET_KEY": settings.secret_key,
        "STRIPE_PUBLISHABLE_KEY": settings.stripe_publishable_key,
        "TICKETS_PAGE_SIZE": settings.tickets_page_size,
        "SESSION_COOKIE_NAME": "frontend_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.is_production,
        # The CSRF token lives as long as the session: an order page left open
        # for the whole payment window still submits.
        "WTF_CSRF_TIME_LIMIT": None,
    }
