"""The expiration service: no database; pending expirations live in RabbitMQ's holding queues."""
from __future__ import annotations

import logging

from services.common import broker, events, metrics
from services.common.batches import batch_consume, batch_event_handler, parse_all
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import rpc
from services.common.settings import Settings

from .schedule import ExpirySchedule, due_queue
from .settings import ExpirationSettings

log = logging.getLogger(__name__)


class ExpirationService(HealthMixin, ParkedMessagesMixin):
    name = "expiration"

    settings = Settings(ExpirationSettings)
    #: plans each expiry's next hop or its expiration:complete, and publishes them in batches
    #: (persistent messages, one wait for the broker's confirms per batch)
    schedule = ExpirySchedule()

    @batch_event_handler("orders", events.ORDER_CREATED, consumer="on_order_created")
    def on_order_created(self, batch):
        # No idempotency record needed: a duplicate schedules a second expiry,
        # and orders ignores a second expiration:complete.
        orders = parse_all(events.ORDER_CREATED, batch)
        self._schedule([(delivery, order.id, order.expiresAt) for delivery, order in zip(batch, orders)])

    # Errors requeue: a failure here is the broker's (publishing), and the message must not be lost.
    @batch_consume(due_queue(), requeue_on_error=True)
    def on_due(self, batch):
        expiries = []
        for delivery in batch:
            try:
                expiries.append((delivery, str(delivery.payload["orderId"]), str(delivery.payload["expiresAt"])))
            except (KeyError, TypeError):
                log.error("dropping a malformed expiry message: %r", delivery.payload)
        self._schedule(expiries)

    def _schedule(self, expiries) -> None:
        """Publish each expiry's next hop, or its expiration:complete once due; all confirmed by the
        broker before the batch is acknowledged."""
        messages, due = [], []
        for delivery, order_id, expires_at in expiries:
            with delivery.scope(order_id=order_id):
                try:
                    message, is_due = self.schedule.plan(order_id, expires_at)
                except ValueError:
                    log.error("dropping an expiry with a bad expiresAt %r (order %s)", expires_at, order_id)
                    continue
            messages.append(message)
            if is_due:
                due.append((delivery, order_id))
        self.schedule.publish(messages)
        for delivery, order_id in due:
            metrics.EVENTS_PUBLISHED.labels(self.name, events.EXPIRATION_COMPLETE).inc()
            with delivery.scope(order_id=order_id):
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
