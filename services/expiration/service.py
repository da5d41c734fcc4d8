"""The expiration service: no database; pending expirations live in RabbitMQ's holding queues."""
from __future__ import annotations

import logging

from nameko.events import EventDispatcher

from services.common import broker, events, metrics
from services.common.handlers import event_handler
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.queues import consume
from services.common.rpc import rpc
from services.common.settings import Settings

from .schedule import ExpirySchedule, due_queue
from .settings import ExpirationSettings

log = logging.getLogger(__name__)


class ExpirationService(HealthMixin, ParkedMessagesMixin):
    name = "expiration"

    settings = Settings(ExpirationSettings)
    schedule = ExpirySchedule()
    #: publishes on "expiration.events" (persistent messages, publisher confirms)
    dispatch = EventDispatcher()

    @event_handler("orders", events.ORDER_CREATED, consumer="on_order_created")
    def on_order_created(self, payload):
        # No idempotency record needed: a duplicate schedules a second expiry,
        # and orders ignores a second expiration:complete.
        order = events.parse(events.ORDER_CREATED, payload)
        self._schedule(order.id, order.expiresAt)

    # Errors requeue: a failure here is the broker's (publishing), and the message must not be lost.
    @consume(due_queue(), requeue_on_error=True)
    def on_due(self, payload):
        try:
            order_id, expires_at = str(payload["orderId"]), str(payload["expiresAt"])
        except (KeyError, TypeError):
            log.error("dropping a malformed expiry message: %r", payload)
            return
        self._schedule(order_id, expires_at)

    def _schedule(self, order_id: str, expires_at: str) -> None:
        try:
            pending = self.schedule.expire_at(order_id, expires_at)
        except ValueError:
            log.error("dropping an expiry with a bad expiresAt %r (order %s)", expires_at, order_id)
            return
        if not pending:
            self.dispatch(events.EXPIRATION_COMPLETE, events.new_event(events.EXPIRATION_COMPLETE, orderId=order_id))
            metrics.EVENTS_PUBLISHED.labels(self.name, events.EXPIRATION_COMPLETE).inc()
            log.info("order %s is due: published expiration:complete", order_id)

    @rpc
    def pending(self):
        """Operators: messages waiting in the broker for their time: ``holding`` (pending expiries, and
        failed event deliveries waiting for their next try, in the delay.* queues) and ``due``
        (expiries due now, not yet handled: should stay near 0)."""
        return broker.summary(self.settings.amqp_uri, self.settings.rabbitmq_management_url)["expirations"]

    def refresh_metrics(self):
        depths = broker.summary(self.settings.amqp_uri, self.settings.rabbitmq_management_url)
        for kind, value in depths["expirations"].items():
            if value is not None:
                metrics.PENDING_EXPIRATIONS.labels(kind).set(value)
        for queue, value in (depths.get("parked") or {}).items():
            metrics.QUEUE_MESSAGES.labels(queue).set(value)
