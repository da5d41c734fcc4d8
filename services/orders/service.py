"""The orders service: RPCs for the gateway, payments and operators; reactions to tickets, expiry, payments."""
from __future__ import annotations

import logging

from nameko.timer import timer

from services.common import config, events
from services.common.handlers import handles
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import ServiceRpc, rpc
from services.common.store import Store

from . import domain
from .models import Base, OutboxMessage, ProcessedEvent

log = logging.getLogger(__name__)

#: how often the timers look for overdue orders and stale payment holds
SWEEP_INTERVAL = float(config.env("ORDERS_SWEEP_INTERVAL", "5"))
#: a `created` order this long past expiresAt lost its expiry message: the safety net cancels it
EXPIRY_GRACE_SECONDS = float(config.env("ORDERS_EXPIRY_GRACE_SECONDS", "10"))
#: an order in awaiting:payment this long is released (payments died mid-charge)
HOLD_TIMEOUT_SECONDS = float(config.env("ORDERS_HOLD_TIMEOUT_SECONDS", "120"))


class OrdersService(HealthMixin, ParkedMessagesMixin):
    name = "orders"

    # More connections than workers (+ timers, outbox relay): a worker waiting on SQLAlchemy's
    # pool under eventlet stalls the others (10 workers on the default pool of 5: 19 vs 82 cancels/s).
    store = Store(Base, OutboxMessage, ProcessedEvent)
    payments = ServiceRpc("payments")

    # -- the gateway ---------------------------------------------------------
    @rpc
    def create_order(self, user_id, user_email, ticket_id):
        with self.store.transaction() as tx:
            order = domain.reserve_ticket(tx, user_id, user_email, ticket_id, config.expiration_window_seconds())
            return order.to_dict()

    @rpc
    def list_orders(self, user_id):
        with self.store.read() as session:
            return [order.to_dict() for order in domain.orders_of(session, user_id)]

    @rpc
    def get_order(self, order_id, user_id=None):
        """The buyer's view (``user_id``: 403 for someone else's) or, without it, an operator's."""
        with self.store.read() as session:
            if user_id is None:
                return domain.find(session, order_id).to_dict()
            return domain.show_order(session, order_id, user_id).to_dict()

    @rpc
    def cancel_order(self, order_id, user_id=None):
        """The buyer's cancel (``user_id``: owner only) or, without it, an operator's."""
        with self.store.transaction() as tx:
            return domain.cancel_order(tx, order_id, user_id).to_dict()

    # -- payments --------------------------------------------------------------
    @rpc
    def hold_for_payment(self, order_id, user_id, holder=None):
        """Payments: hold the order for charge attempt ``holder`` (the same holder again: no-op)."""
        with self.store.transaction() as tx:
            return domain.hold_for_payment(tx, order_id, user_id, holder)

    @rpc
    def release_hold(self, order_id, holder=None):
        """Payments (its attempt ``holder``'s hold only) or operators (any hold): let go of the order."""
        with self.store.transaction() as tx:
            return domain.release_hold(tx, order_id, holder).to_dict()

    # -- events ------------------------------------------------------------------
    @handles(events.TICKET_CREATED)
    def on_ticket_created(self, tx, event):
        domain.apply_ticket(tx, event)

    @handles(events.TICKET_UPDATED)
    def on_ticket_updated(self, tx, event):
        domain.apply_ticket(tx, event)

    @handles(events.EXPIRATION_COMPLETE)
    def on_expiration_complete(self, tx, event):
        if domain.expire(tx, event.orderId):
            log.info("order %s expired", event.orderId)

    @handles(events.PAYMENT_CREATED)
    def on_payment_created(self, tx, event):
        domain.complete(tx, event.orderId)

    # -- timers ------------------------------------------------------------------
    @timer(interval=SWEEP_INTERVAL)
    def cancel_overdue_orders(self):
        """The safety net: an expiry message that got lost must not keep a ticket reserved forever."""
        with self.store.read() as session:
            overdue = domain.overdue_ids(session, EXPIRY_GRACE_SECONDS)
        for order_id in overdue:
            try:
                with self.store.transaction() as tx:
                    cancelled = domain.expire(tx, order_id)
                if cancelled:
                    log.warning("safety net: cancelled order %s, over %ss past its expiresAt (expiry message lost?)",
                                order_id, EXPIRY_GRACE_SECONDS)
            except Exception:
                log.exception("safety net could not cancel order %s; next round", order_id)

    @timer(interval=SWEEP_INTERVAL)
    def release_stale_holds(self):
        """Payments holds an order while it charges; if it died before sending the charge, the
        hold is released here. A charge whose outcome payments does not know yet keeps the hold
        (payments' reconciliation settles it), so an order is never both charged and cancelled."""
        with self.store.read() as session:
            stale = domain.stale_hold_ids(session, HOLD_TIMEOUT_SECONDS)
        for order_id in stale:
            try:
                if self.payments.has_unsettled_charge(order_id):
                    log.warning("order %s is held for a charge payments is still settling; keeping the hold",
                                order_id)
                    continue
            except Exception as exc:  # payments unreachable: it cannot vouch that nothing was charged
                log.warning("cannot ask payments about order %s (%r); keeping the hold", order_id, exc)
                continue
            try:
                with self.store.transaction() as tx:
                    order = domain.release_hold(tx, order_id)
                log.warning("released payment hold on order %s after %ss (now %s)",
                            order_id, HOLD_TIMEOUT_SECONDS, order.status)
            except Exception:
                log.exception("could not release the hold on order %s; next round", order_id)
