"""The tickets service: RPCs for the gateway and operators, reactions to order events."""
from __future__ import annotations

from nameko.rpc import rpc

from services.common import events
from services.common.handlers import handles
from services.common.health import HealthMixin
from services.common.errors import Forbidden
from services.common.store import Store
from services.common.validation import is_valid_id

from . import domain
from .models import Base, OutboxMessage, ProcessedEvent


class TicketsService(HealthMixin):
    name = "tickets"

    store = Store(Base, OutboxMessage, ProcessedEvent)

    # -- the gateway: user-facing, the acting user's id first ------------------
    @rpc
    def create_user_ticket(self, user_id, title, price, request_id=None):
        with self.store.transaction() as tx:
            return domain.list_ticket(tx, _user(user_id), title, price, request_id).to_dict()

    @rpc
    def update_user_ticket(self, user_id, ticket_id, title, price):
        with self.store.transaction() as tx:
            return domain.edit_ticket(tx, ticket_id, _user(user_id), title, price).to_dict()

    # -- public reads (the gateway) and operators ----------------------------

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


def _user(user_id) -> str:
    """A user-facing RPC always acts for someone: a missing id is a bug, never an operator."""
    if not is_valid_id(user_id):
        raise Forbidden("An acting user is required")
    return user_id
