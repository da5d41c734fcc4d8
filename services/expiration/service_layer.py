"""The expiration service layer: scheduling a batch of expiries, and asking the broker what is pending.

:mod:`services.expiration.service` parses the messages and calls one function here; each asks
the schedule (:mod:`services.expiration.schedule`, which applies :mod:`services.expiration.domain`'s
rules) what to publish and publishes it. There is no database and so no transaction: what must
not be lost is published with the broker's confirms before the batch is acknowledged.
"""
from __future__ import annotations

import logging

from services.common import broker, events, metrics

log = logging.getLogger(__name__)


def schedule(schedule, service_name: str, expiries) -> None:
    """Publish each expiry's next hop, or its expiration:complete once due; all confirmed by the
    broker before the batch is acknowledged. ``expiries``: (delivery, order id, expiresAt)."""
    messages, due = [], []
    for delivery, order_id, expires_at in expiries:
        with delivery.scope(order_id=order_id):
            try:
                message, is_due = schedule.plan(order_id, expires_at)
            except ValueError:
                log.error("dropping an expiry with a bad expiresAt %r (order %s)", expires_at, order_id)
                continue
        messages.append(message)
        if is_due:
            due.append((delivery, order_id))
    schedule.publish(messages)
    for delivery, order_id in due:
        metrics.EVENTS_PUBLISHED.labels(service_name, events.EXPIRATION_COMPLETE).inc()
        with delivery.scope(order_id=order_id):
            log.info("order %s is due: published expiration:complete", order_id)


def pending(settings) -> dict:
    """Messages waiting in the broker for their time (see the ``pending`` RPC)."""
    return broker.summary(settings.amqp_uri, settings.rabbitmq_management_url)["expirations"]


def refresh_metrics(settings) -> None:
    depths = broker.summary(settings.amqp_uri, settings.rabbitmq_management_url)
    for kind, value in depths["expirations"].items():
        if value is not None:
            metrics.PENDING_EXPIRATIONS.labels(kind).set(value)
    for queue, value in (depths.get("parked") or {}).items():
        metrics.QUEUE_MESSAGES.labels(queue).set(value)
