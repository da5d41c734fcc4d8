"""The orders service's settings (see :mod:`services.common.settings`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.settings import ServiceSettings, not_negative, positive, setting


@dataclass(frozen=True)
class OrdersSettings(ServiceSettings):
    service: ClassVar[str] = "orders"

    orders_database_url: str | None = setting(None, "orders' database (default: a SQLite file under VAR_DIR)")
    expiration_window_seconds: float = setting(900.0, "how long an order holds a ticket", check=positive)
    orders_sweep_interval: float = setting(5.0, "how often the timers look for overdue orders and stale payment holds",
                                           check=positive)
    orders_expiry_grace_seconds: float = setting(
        10.0, "a `created` order this long past expiresAt lost its expiry message: the safety net cancels it",
        check=not_negative)
    orders_hold_timeout_seconds: float = setting(
        120.0, "an order in awaiting:payment this long is released (payments died mid-charge)", check=not_negative)
