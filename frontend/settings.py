"""Configuration of the frontend, read from the environment.

`create_app(config)` starts from `settings_from_env()` and lets an explicit
dict override any key (tests point GATEWAY_URL at a fake gateway this way).
"""
import logging
import os

from services.common.config import require_secret, secret

log = logging.getLogger(__name__)



def settings_from_env(environ=None) -> dict:
    env = os.environ if environ is None else environ
    port = env.get("PORT") or "8080"
    return {
        "TICKETING_ENV": env.get("TICKETING_ENV", "development"),
        # `ticketing up` serves gateway and frontend on one origin, so by
        # default the frontend reaches the gateway on the same port.
        "GATEWAY_URL": env.get("GATEWAY_URL") or f"http://127.0.0.1:{port}",
        # Seconds to wait for one gateway call, and for all the calls of one
        # page together: a slow gateway gives a friendly page, not a hang.
        "GATEWAY_TIMEOUT": float(env.get("GATEWAY_TIMEOUT", "4")),
        "GATEWAY_PAGE_BUDGET": float(env.get("GATEWAY_PAGE_BUDGET", "6")),
        # A charge talks to the card processor: give it longer before giving up.
        "PAYMENT_TIMEOUT": float(env.get("PAYMENT_TIMEOUT", "15")),
        "SECRET_KEY": (env.get("SECRET_KEY") or None) if environ is not None else secret("SECRET_KEY"),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY") or None,
        "TICKETS_PAGE_SIZE": int(env.get("TICKETS_PAGE_SIZE", "24")),
    }


def finalise(config: dict) -> dict:
    """Fill in derived settings and refuse an unsafe set-up: a missing, placeholder or short
    SECRET_KEY stops the frontend in every environment (it signs sessions and CSRF tokens)."""
    production = config.get("TICKETING_ENV") == "production"
    config["SECRET_KEY"] = require_secret("SECRET_KEY", config.get("SECRET_KEY"))
    config.setdefault("SESSION_COOKIE_NAME", "frontend_session")
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("SESSION_COOKIE_SECURE", production)
    # The CSRF token lives as long as the session: an order page left open
    # for the whole payment window still submits.
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    config["GATEWAY_URL"] = config["GATEWAY_URL"].rstrip("/")
    return config
