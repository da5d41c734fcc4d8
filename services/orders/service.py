"""The orders service: RPCs for the gateway, payments and operators; reactions to tickets, expiry, payments."""
from __future__ import annotations

from functools import partial

from services.common import events
from services.common.batches import batch_event_handler, handles_batch, parse_all
from services.common.handlers import handles
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import ServiceRpc, rpc
from services.common.settings import Settings, configured_timer
from services.common.store import Store
from services.common.validation import acting_user

from . import service_layer as orders
from .models import Base, OutboxMessage, ProcessedEvent
from .settings import OrdersSettings


class OrdersService(HealthMixin, ParkedMessagesMixin):
    """Entrypoints only: each parses its arguments, calls one function of the service layer
    (:mod:`services.orders.service_layer`, which owns the transaction) and returns what it gives."""

    name = "orders"

    # More connections than workers (+ timers, outbox relay): a worker waiting on SQLAlchemy's
    # pool under eventlet stalls the others (10 workers on the default pool of 5: 19 vs 82 cancels/s).
    store = Store(Base, OutboxMessage, ProcessedEvent)
    payments = ServiceRpc("payments")
    settings = Settings(OrdersSettings)

    # -- the gateway: user-facing, the acting user's id first -------------------
    @rpc
    def create_order(self, user_id, user_email, ticket_id):
        return orders.reserve(self.store, user_id, user_email, ticket_id,
                              self.settings.expiration_window_seconds).to_dict()

    @rpc
    def list_user_orders(self, user_id):
        """The gateway: the acting user's orders, oldest first."""
        return orders.orders_of(self.store, acting_user(user_id))

    @rpc
    def get_user_order(self, user_id, order_id):
        """The gateway: one order of the acting user (403 for someone else's)."""
        return orders.order_of(self.store, acting_user(user_id), order_id)

    @rpc
    def cancel_user_order(self, user_id, order_id):
        """The gateway: the buyer cancels their own order."""
        return orders.cancel_for_buyer(self.store, acting_user(user_id), order_id).to_dict()

    # -- operators (no acting user; the broker lets only operators and services call these) --
    @rpc
    def get_order(self, order_id):
        return orders.any_order(self.store, order_id)

    @rpc
    def cancel_order(self, order_id):
        """Releases the ticket; 409 if complete or being paid."""
        return orders.cancel_any(self.store, order_id).to_dict()

    @rpc
    def release_any_hold(self, order_id):
        """Let go of a payment hold now, whoever holds it (back to created, or cancelled if
        expired), instead of waiting for the stale-hold timer; nothing if the order is not held."""
        return orders.release_any(self.store, order_id).to_dict()

    @rpc
    def find_orders(self, user_id=None, status=None, limit=50):
        """Operators: the newest orders, of one user and/or in one status (at most ``limit``, 500)."""
        return orders.search(self.store, user_id, status, limit)

    @rpc
    def count_orders(self):
        """Operators: how many orders are in each status (``created`` ones are waiting to be paid or to expire)."""
        return orders.count_by_status(self.store)

    def refresh_metrics(self):
        orders.refresh_metrics(self.store)

    # -- payments (a charge attempt is the holder) ----------------------------------
    @rpc
    def hold_for_payment(self, order_id, user_id, holder=None):
        """Payments: hold the order for charge attempt ``holder`` (the same holder again: no-op)."""
        return orders.hold(self.store, order_id, user_id, holder)

    @rpc
    def release_hold(self, order_id, holder):
        """Payments: let go of the hold of its attempt ``holder``, and of no other."""
        return orders.release_by(self.store, order_id, holder).to_dict()

    # -- events ------------------------------------------------------------------
    # Which handlers record event ids (processed_events) to apply an event once: only
    # payment:created. The ticket replica takes a ticket event only if it is newer than what it
    # has (the version), and expiry cancels an order only while it is ``created`` and overdue:
    # applied twice, those do nothing the second time, so they need no record.
    @handles_batch(events.TICKET_CREATED, consumer="on_ticket_created")
    def on_ticket_created(self, tx, event):
        orders.apply_ticket(tx, event)

    @batch_event_handler(events.SOURCE[events.TICKET_UPDATED], events.TICKET_UPDATED, consumer="on_ticket_updated")
    def on_ticket_updated(self, batch):
        """Most ticket updates echo this service's own order events (the ticket reserved or released):
        they change nothing the replica keeps (title, price, seller), so they take one read and no
        transaction. A seller's new price or title is applied."""
        tickets = parse_all(events.TICKET_UPDATED, batch)
        orders.on_ticket_updates(self.store, [(event, partial(delivery.scope, events.TICKET_UPDATED))
                                              for delivery, event in zip(batch, tickets)])

    @batch_event_handler(events.SOURCE[events.EXPIRATION_COMPLETE], events.EXPIRATION_COMPLETE,
                         consumer="on_expiration_complete")
    def on_expiration_complete(self, batch):
        """A batch of expiries: one UPDATE, one commit."""
        expiries = parse_all(events.EXPIRATION_COMPLETE, batch)
        orders.on_expirations(self.store, {event.orderId: partial(delivery.scope, events.EXPIRATION_COMPLETE)
                                           for delivery, event in zip(batch, expiries)})

    @handles(events.PAYMENT_CREATED, consumer="on_payment_created")
    def on_payment_created(self, tx, event):
        orders.on_payment(tx, event)

    # -- timers ------------------------------------------------------------------
    @configured_timer("orders_sweep_interval")
    def cancel_overdue_orders(self):
        """The safety net: an expiry message that got lost must not keep a ticket reserved forever."""
        orders.cancel_overdue(self.store, self.settings.orders_expiry_grace_seconds)

    @configured_timer("orders_sweep_interval")
    def release_stale_holds(self):
        """Payments holds an order while it charges; a hold older than ORDERS_HOLD_TIMEOUT_SECONDS is let
        go once payments says no charge of it is still being settled."""
        orders.release_stale_holds(self.store, self.payments, self.settings.orders_hold_timeout_seconds)
