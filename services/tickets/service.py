"""The tickets service: RPCs for the gateway and operators, reactions to order events."""
from __future__ import annotations

import logging
import weakref

from services.common import events
from services.common.batches import batch_event_handler, handles_batch, parse_all
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import rpc
from services.common.settings import Settings
from services.common.store import Store
from services.common.validation import acting_user

from . import domain
from .models import Base, OutboxMessage
from .settings import TicketsSettings

log = logging.getLogger(__name__)


_readers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _reader(engine):
    """The service's engine outside transactions (autocommit; same pool): a one-statement read
    needs no BEGIN and no ROLLBACK, two round trips of three."""
    reader = _readers.get(engine)
    if reader is None:
        reader = _readers[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


class TicketsService(HealthMixin, ParkedMessagesMixin):
    name = "tickets"

    store = Store(Base, OutboxMessage)
    settings = Settings(TicketsSettings)

    # -- the gateway: user-facing, the acting user's id first ------------------
    @rpc
    def create_user_ticket(self, user_id, title, price, request_id=None):
        with self.store.transaction() as tx:
            return domain.list_ticket(tx, acting_user(user_id), title, price, request_id).to_dict()

    @rpc
    def update_user_ticket(self, user_id, ticket_id, title, price):
        with self.store.transaction() as tx:
            return domain.edit_ticket(tx, ticket_id, acting_user(user_id), title, price).to_dict()

    # -- public reads (the gateway) and operators ----------------------------

    @rpc
    def get_ticket(self, ticket_id):
        with _reader(self.store.engine).connect() as conn:
            return domain.ticket_view(conn, ticket_id)

    @rpc
    def list_tickets(self, limit=None, cursor=None):
        with _reader(self.store.engine).connect() as conn:
            page, next_cursor = domain.page_on_sale(conn, limit, cursor)
            return {"tickets": page, "next": next_cursor}

    # No handler here records event ids (processed_events): each effect is idempotent by itself.
    # A ticket already held by the order, already released for it (its cancellation is recorded)
    # or already sold is left as it is, so a redelivered order event changes nothing.
    @handles_batch(events.ORDER_CREATED, consumer="on_order_created")
    def on_order_created(self, tx, event):
        domain.reserve(tx, event.ticket.id, event.id)
        log.info("ticket %s reserved by order %s", event.ticket.id, event.id)

    @batch_event_handler(events.SOURCE[events.ORDER_CANCELLED], events.ORDER_CANCELLED, consumer="on_order_cancelled")
    def on_order_cancelled(self, batch):
        """A batch of cancellations: their tickets released in one transaction (each ticket:updated
        carries the correlation id of its own order:cancelled)."""
        cancelled = parse_all(events.ORDER_CANCELLED, batch)
        by_order = {event.id: delivery for delivery, event in zip(batch, cancelled)}
        with self.store.transaction() as tx:
            domain.release_all(tx, [(event.ticket.id, event.id) for event in cancelled],
                               announcing=lambda order_id: by_order[order_id].scope(events.ORDER_CANCELLED))
        for delivery, event in zip(batch, cancelled):
            with delivery.scope(events.ORDER_CANCELLED):
                log.info("ticket %s released: order %s was cancelled", event.ticket.id, event.id)

    @handles_batch(events.ORDER_COMPLETED, consumer="on_order_completed")
    def on_order_completed(self, tx, event):
        domain.mark_sold(tx, event.ticket.id, event.id)
        log.info("ticket %s sold: order %s is complete", event.ticket.id, event.id)
