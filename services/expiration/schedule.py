"""When each order expires, held by RabbitMQ itself: messages hopping through dead-letter TTL queues.

An expiry is a message ``{"orderId", "expiresAt"}``. It is published to the
holding queue of :func:`services.common.delays.next_hop` of the time left;
when that queue's TTL runs out RabbitMQ dead-letters it into ``expiration.due``.
If it is still early there (a long delay takes a few hops), it is sent on
again; once due, the service publishes ``expiration:complete``.
Nothing is kept in the process, so a restart loses nothing. This is the expiration
service's adapter to the broker; when an expiry is due is :mod:`services.expiration.domain`'s.
"""
from __future__ import annotations

import logging

from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange

from services.common import events, logs
from services.common.broker import DUE_QUEUE
from services.common.confirms import ConfirmedPublisher, Outgoing
from services.common.delays import DelayedDelivery, durable_queue
from services.common.settings import settings_of

from . import domain

log = logging.getLogger(__name__)



def due_queue():
    return durable_queue(DUE_QUEUE)


class ExpirySchedule(DependencyProvider):
    """Puts (or puts back) expiries on the ladder, in batches: :meth:`plan` says what to publish
    for each expiry (its next hop, or ``expiration:complete`` once due), and :meth:`publish`
    sends them all with one wait for the broker's confirms."""

    def setup(self):
        settings = settings_of(self.container)
        self.delivery = DelayedDelivery(settings.amqp_uri, settings.queue_type, settings.quorum_dead_lettering)
        self.publisher = ConfirmedPublisher(settings.amqp_uri)
        self.exchange = get_event_exchange(self.container.service_name, self.container.config)

    def stop(self):
        self.publisher.close()

    def get_dependency(self, worker_ctx):
        return self

    def next_hop(self, order_id: str, expires_at: str) -> int | None:
        """The holding queue's delay for the next hop of this expiry; None once it is due."""
        hop = domain.hop(expires_at)
        if hop is None:
            return None
        log.info("order %s expires at %s: waiting %d ms in delay.%dms", order_id, expires_at, hop, hop)
        return hop

    def plan(self, order_id: str, expires_at: str) -> tuple[Outgoing, bool]:
        """What to publish for this expiry now, and whether that is its ``expiration:complete``."""
        hop = self.next_hop(order_id, expires_at)
        if hop is None:
            return self.dispatch(events.EXPIRATION_COMPLETE, orderId=order_id), True
        return self.delivery.later(DUE_QUEUE, {"orderId": order_id, "expiresAt": expires_at}, hop,
                                   logs.headers()), False

    def dispatch(self, name: str, **data) -> Outgoing:
        """Event ``name`` of this service (on its nameko event exchange), to publish with the batch."""
        return Outgoing(events.new_event(name, **data), self.exchange, name, logs.headers(), [self.exchange])

    def publish(self, messages: list[Outgoing]) -> None:
        self.publisher.publish(messages)
