"""The gateway's settings (see :mod:`services.common.settings`), loaded once by ``create_app``."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import CommonSettings, not_negative, positive, setting


@dataclass(frozen=True)
class GatewaySettings(CommonSettings):
    rpc_timeout: float = setting(5.0, "seconds the gateway waits for a service before a 503 (each request's deadline)",
                                 check=positive)
    proxy_count: int = setting(0, "trusted reverse proxies in front of the gateway (client address for throttling)",
                               check=not_negative)
    revocation_poll_seconds: float = setting(1.0, "how often the gateway pulls sign-outs and revoked users from auth "
                                                  "(0: never)", check=not_negative)
