"""Configuration from the environment (the README's configuration table).

One place reads the environment; everything else asks this module. Nameko
services get a nameko config dict built from it (:func:`nameko_config`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from . import logs

log = logging.getLogger(__name__)

DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672/"

SERVICES_WITH_DATABASE = ("auth", "tickets", "orders", "payments", "confirmation")

#: nameko config key: the schema was migrated before the service started (``ticketing run`` does it
#: in a short-lived child process, so Alembic never loads in the service's own); the Store skips it
SCHEMA_MIGRATED = "SCHEMA_MIGRATED"


class ConfigurationError(RuntimeError):
    pass


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None:
        return default
    try:
        return int(float(raw))
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc


def is_production() -> bool:
    return env("TICKETING_ENV", "development") == "production"


def amqp_uri() -> str:
    """The broker. Several addresses of one cluster, separated by ``;``, give failover:
    ``amqp://u:p@rabbit-0:5672/v;amqp://u:p@rabbit-1:5672/v`` connects to the first that
    answers and, when that node goes away, reconnects to the next live one (kombu)."""
    return env("AMQP_URI", DEFAULT_AMQP_URI)


def queue_type() -> str:
    """``QUEUE_TYPE``: ``classic`` (default) or ``quorum`` for every durable queue (see ``queues``)."""
    value = env("QUEUE_TYPE", "classic").strip().lower()
    if value not in ("classic", "quorum"):
        raise ConfigurationError(f"QUEUE_TYPE must be classic or quorum, got {value!r}")
    return value


def var_dir() -> Path:
    return Path(env("VAR_DIR", "./var")).resolve()


def database_url(service: str) -> str:
    """The database of one service: ``<SERVICE>_DATABASE_URL`` or a SQLite file under VAR_DIR."""
    url = env(f"{service.upper()}_DATABASE_URL")
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is our driver; accept the plain scheme operators paste.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    directory = var_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / (service + '.db')}"


#: fragments of the sample values in .env.example and of old development defaults
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "placeholder", "insecure", "dev-only",
                       "example", "not-a-secret")
MIN_SECRET_BYTES = 32


def secret(name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (compose/Kubernetes secrets)."""
    value = env(name)
    path = env(f"{name}_FILE")
    if value is None and path:
        try:
            value = Path(path).read_text().strip() or None
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    return value


def require_secret(name: str, value: str | None) -> str:
    """Refuse (in every environment) a missing, placeholder or short (< 32 bytes) secret."""
    hint = "(`ticketing keys DIR` writes proper ones; `ticketing up` makes them per run)"
    if not value:
        raise ConfigurationError(f"{name} must be set {hint}")
    if any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
        raise ConfigurationError(f"{name} is a placeholder value; set a random one {hint}")
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{name} must be at least {MIN_SECRET_BYTES} bytes {hint}")
    return value


def access_token_ttl() -> int:
    return env_int("ACCESS_TOKEN_TTL", 15 * 60)


def refresh_token_ttl() -> int:
    return env_int("REFRESH_TOKEN_TTL", 7 * 24 * 3600)


def expiration_window_seconds() -> float:
    raw = env("EXPIRATION_WINDOW_SECONDS", "900")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"EXPIRATION_WINDOW_SECONDS must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigurationError("EXPIRATION_WINDOW_SECONDS must be > 0")
    return value


def public_url() -> str:
    return env("PUBLIC_URL", f"http://localhost:{env('PORT', '8080')}").rstrip("/")


def mail_outbox_dir() -> Path:
    return Path(env("MAIL_OUTBOX_DIR", str(var_dir() / "mail")))


def nameko_config(service: str | None = None) -> dict:
    """The nameko config dict for one service (or for a client when ``service`` is None)."""
    config: dict = {
        "AMQP_URI": amqp_uri(),
        "QUEUE_TYPE": queue_type(),
        "QUORUM_DEAD_LETTERING": env("QUORUM_DEAD_LETTERING", "at-most-once"),
        "serializer": "json",
        # Each service serves /healthz and /readyz for probes.
        "WEB_SERVER_ADDRESS": f"{env('HEALTH_HOST', '0.0.0.0')}:{env_int('HEALTH_PORT', 8000)}",
        "max_workers": env_int("MAX_WORKERS", 10),
        "parent_calls_tracked": 10,
        # JSON lines with the correlation id (services.common.logs)
        "LOGGING": logs.dict_config(service or "client", env("LOG_LEVEL", "INFO")),
    }
    if service in SERVICES_WITH_DATABASE:
        config["DB_URIS"] = {f"{service}:Base": database_url(service)}
    return config
