"""The auth service's settings (see :mod:`services.common.settings`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.settings import ServiceSettings, at_least_one, not_negative, positive, setting


@dataclass(frozen=True)
class AuthSettings(ServiceSettings):
    service: ClassVar[str] = "auth"

    auth_database_url: str | None = setting(None, "auth's database (default: a SQLite file under VAR_DIR)")
    refresh_grace_seconds: int = setting(
        10, "how long a just-rotated refresh token still gives the same successor (tabs refreshing together)",
        check=not_negative)
    auth_max_signups_per_client: int = setting(10, "sign-ups per client address per 15 minutes", check=at_least_one)
    auth_max_failures_per_client: int = setting(20, "sign-in attempts per client address per 15 minutes",
                                                check=at_least_one)
    auth_max_email_delay_seconds: int = setting(60, "the longest wait between sign-in attempts on one email",
                                                check=not_negative)
    # RFC 9106's second recommended profile by default; tests lower the cost.
    argon2_memory_kib: int = setting(46 * 1024, "memory of one password hash, in KiB (OWASP's minimum: 46 MiB)", check=positive)
    argon2_time_cost: int = setting(1, "Argon2 iterations of one password hash", check=at_least_one)
    argon2_parallelism: int = setting(1, "Argon2 lanes of one password hash", check=at_least_one)
    argon2_max_concurrent: int = setting(1, "password hashes running at once in one auth process", check=at_least_one)
    argon2_queue_seconds: float = setting(3.0, "how long a password hash waits for its turn before a 503",
                                          check=not_negative)
