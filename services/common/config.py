"""Where configuration comes from: the environment and secret files, and the error a bad value raises.

The settings classes (:mod:`services.common.settings`) read every component's
settings through here; this module only knows the sources.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

SERVICES_WITH_DATABASE = ("auth", "tickets", "orders", "payments", "confirmation")

#: nameko config key: the schema was migrated before the service started (``ticketing run`` does it
#: in a short-lived child process, so Alembic never loads in the service's own); the Store skips it
SCHEMA_MIGRATED = "SCHEMA_MIGRATED"


class ConfigurationError(RuntimeError):
    pass


def env(name: str, default: str | None = None) -> str | None:
    """A raw variable of this process's environment, read now (empty counts as unset).

    For what is not a component's setting (the launcher's and operator commands' own
    variables); components read theirs through their settings class."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


#: fragments of the sample values in .env.example and of old development defaults
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "placeholder", "insecure", "dev-only",
                       "example", "not-a-secret")
MIN_SECRET_BYTES = 32


def secret(name: str, environ: Mapping | None = None) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (compose/Kubernetes secrets),
    in ``environ`` (default: this process's environment, read now)."""
    environ = os.environ if environ is None else environ
    value = environ.get(name) or None
    path = environ.get(f"{name}_FILE") or None
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
