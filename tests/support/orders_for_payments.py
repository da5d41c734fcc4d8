"""The orders service as payments sees it, for payments' tests: the real one, not a copy of its rules.

Its RPCs (``hold_for_payment``, ``release_hold``, and the operators' ``release_any_hold``) are the real ``OrdersService``
methods on a real orders store (SQLite, the orders migrations), so a test of
payments cannot pass against hold rules or amounts (integer cents) that orders
does not have. The helpers put orders in the state a test needs and record the
calls payments made.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from nameko.testing.services import worker_factory
from sqlalchemy import update

from services.common import events
from services.orders.models import Order, TicketReplica
from services.orders.service import OrdersService
from tests.support.unit_store import UnitStore

SELLER = "5" * 32


class OrdersForPayments:
    def __init__(self, store: UnitStore):
        self.store = store
        self.service = worker_factory(OrdersService, store=store)
        self.calls: list = []

    # -- what payments calls ---------------------------------------------------
    def hold_for_payment(self, order_id, user_id, holder=None):
        self.calls.append(("hold_for_payment", order_id, user_id))
        return self.service.hold_for_payment(order_id, user_id, holder)

    def release_hold(self, order_id, holder):
        self.calls.append(("release_hold", order_id))
        return self.service.release_hold(order_id, holder)

    # -- what an operator calls ---------------------------------------------------
    def release_any_hold(self, order_id):
        return self.service.release_any_hold(order_id)

    # -- for the tests -----------------------------------------------------------
    def add(self, order_id: str, status: str = "created", user: str = "a" * 32, expires_in: float = 60.0,
            price: str = "12.50") -> str:
        """An order of ``user`` for a ticket of its own (its id is the order's), reserved at ``price``."""
        with self.store.transaction() as tx:
            tx.session.add(TicketReplica(id=order_id, title="Concert", price=Decimal(price), user_id=SELLER,
                                         version=0))
            tx.session.add(Order(id=order_id, user_id=user, user_email="buyer@example.com", ticket_id=order_id,
                                 status=status, expires_at=events.utcnow() + timedelta(seconds=expires_in),
                                 price=Decimal(price)))
        return order_id

    def status(self, order_id: str) -> str:
        with self.store.read() as session:
            return session.get(Order, order_id).status

    def set(self, order_id: str, *, status: str | None = None, expires_at: datetime | None = None) -> None:
        """What orders did meanwhile (applied payment:created, time ran out...), behind payments' back."""
        values = {**({"status": status} if status else {}), **({"expires_at": expires_at} if expires_at else {})}
        with self.store.transaction() as tx:
            tx.session.execute(update(Order).where(Order.id == order_id).values(**values)
                               .execution_options(synchronize_session=False))

    def expire(self, order_id: str) -> None:
        self.set(order_id, expires_at=events.utcnow() - timedelta(seconds=1))
