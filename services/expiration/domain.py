"""Expiry rules, without a broker: how long an expiry has left, and whether it is due or hops on.

The service layer (:mod:`services.expiration.service_layer`) asks these rules and publishes
through the schedule (:mod:`services.expiration.schedule`, the adapter to RabbitMQ's holding
queues). The expiration service keeps no database: a pending expiry is a message.
"""
from __future__ import annotations

import time
from datetime import datetime

from services.common.delays import next_hop

#: a message at most this early counts as due (the ladder's finest step is 100 ms; never expire early by more)
EARLY_TOLERANCE_MS = 5


def remaining_ms(expires_at: str, now: float | None = None) -> float:
    deadline = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    return (deadline - (time.time() if now is None else now)) * 1000


def hop(expires_at: str, now: float | None = None) -> int | None:
    """The holding queue's delay for the next hop of an expiry at ``expires_at``; None once it is due."""
    left = remaining_ms(expires_at, now)
    if left <= EARLY_TOLERANCE_MS:
        return None
    return next_hop(left)
