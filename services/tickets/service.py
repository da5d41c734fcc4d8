"""The tickets service: RPCs for the gateway and operators, reactions to order events."""
from __future__ import annotations

import logging

from services.common import events
from services.common.batches import batch_event_handler, handles_batch, parse_all
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import rpc
from services.common.settings import Settings
from services.common.store import Store
from services.common.validation import acting_user

from . import service_layer as tickets
from .models import Base, OutboxMessage
from .settings import TicketsSettings

log = logging.getLogger(__name__)


class TicketsService(HealthMixin, ParkedMessagesMixin):
    """Entrypoints only: each parses its arguments, calls one function of the service layer
    (:mod:`services.tickets.service_layer`, which owns the transaction) and returns what it gives."""

    name = "tickets"

    store = Store(Base, OutboxMessage)
    settings = Settings(TicketsSettings)

    # -- the gateway: user-facing, the acting user's id first ------------------
    @rpc
    def create_user_ticket(self, user_id, title, price, request_id=None):
        return tickets.create(self.store, acting_user(user_id), title, price, request_id)

    @rpc
    def update_user_ticket(self, user_id, ticket_id, title, price):
        return tickets.update(self.store, acting_user(user_id), ticket_id, title, price)

    # -- public reads (the gateway) and operators ----------------------------

    @rpc
    def get_ticket(self, ticket_id):
        return tickets.get(self.store, ticket_id)

    @rpc
    def list_tickets(self, limit=None, cursor=None):
        return tickets.on_sale(self.store, limit, cursor)

    # No handler here records event ids (processed_events): each effect is idempotent by itself.
    # A ticket already held by the order, already released for it (its cancellation is recorded)
    # or already sold is left as it is, so a redelivered order event changes nothing.
    @handles_batch(events.ORDER_CREATED, consumer="on_order_created")
    def on_order_created(self, tx, event):
        tickets.reserve(tx, event.ticket.id, event.id)
        log.info("ticket %s reserved by order %s", event.ticket.id, event.id)

    @batch_event_handler(events.SOURCE[events.ORDER_CANCELLED], events.ORDER_CANCELLED, consumer="on_order_cancelled")
    def on_order_cancelled(self, batch):
        """A batch of cancellations: their tickets released in one transaction (each ticket:updated
        carries the correlation id of its own order:cancelled)."""
        cancelled = parse_all(events.ORDER_CANCELLED, batch)
        by_order = {event.id: delivery for delivery, event in zip(batch, cancelled)}
        tickets.release_cancelled(self.store, [(event.ticket.id, event.id) for event in cancelled],
                                  announcing=lambda order_id: by_order[order_id].scope(events.ORDER_CANCELLED))
        for delivery, event in zip(batch, cancelled):
            with delivery.scope(events.ORDER_CANCELLED):
                log.info("ticket %s released: order %s was cancelled", event.ticket.id, event.id)

    @handles_batch(events.ORDER_COMPLETED, consumer="on_order_completed")
    def on_order_completed(self, tx, event):
        tickets.mark_sold(tx, event.ticket.id, event.id)
        log.info("ticket %s sold: order %s is complete", event.ticket.id, event.id)
