"""The tickets service's settings (see :mod:`services.common.settings`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.settings import ServiceSettings, setting


@dataclass(frozen=True)
class TicketsSettings(ServiceSettings):
    service: ClassVar[str] = "tickets"

    tickets_database_url: str | None = setting(None, "tickets' database (default: a SQLite file under VAR_DIR)")
