"""The expiration service's settings (see :mod:`services.common.settings`): the common ones; it has no database."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.settings import ServiceSettings


@dataclass(frozen=True)
class ExpirationSettings(ServiceSettings):
    service: ClassVar[str] = "expiration"
