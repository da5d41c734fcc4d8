"""The tickets service: RPCs for the gateway and operators, reactions to order events."""
from __future__ import annotations


from services.common import events
from services.common.handlers import handles
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.store import Store
from services.common.rpc import rpc

from . import domain
from .models import Base, OutboxMessage, ProcessedEvent


class TicketsService(HealthMixin, ParkedMessagesMixin):
    name = "tickets"

    store = Store(Base, OutboxMessage, ProcessedEvent)

    @rpc
    def create_ticket(self, user_id, title, price, request_id=None):
        with self.store.transaction() as tx:
            return domain.list_ticket(tx, user_id, title, price, request_id).to_dict()

    @rpc
    def update_ticket(self, ticket_id, user_id, title, price):
        with self.store.transaction() as tx:
            return domain.edit_ticket(tx, ticket_id, user_id, title, price).to_dict()

    @rpc
    def get_ticket(self, ticket_id):
        with self.store.read() as session:
            return domain.find(session, ticket_id).to_dict()

    @rpc
    def list_tickets(self, limit=None, cursor=None):
        with self.store.read() as session:
            page, next_cursor = domain.page_on_sale(session, limit, cursor)
            return {"tickets": [ticket.to_dict() for ticket in page], "next": next_cursor}

    @handles(events.ORDER_CREATED)
    def on_order_created(self, tx, event):
        domain.reserve(tx, event.ticket.id, event.id)

    @handles(events.ORDER_CANCELLED)
    def on_order_cancelled(self, tx, event):
        domain.release(tx, event.ticket.id, event.id)

    @handles(events.ORDER_COMPLETED)
    def on_order_completed(self, tx, event):
        domain.mark_sold(tx, event.ticket.id, event.id)
