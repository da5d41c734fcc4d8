"""The orders service: RPCs for the gateway, payments and operators; reactions to tickets, expiry, payments."""
from __future__ import annotations

import logging

from nameko.timer import timer

from services.common import config, events, logs, metrics
from services.common.batches import batch_event_handler, handles_batch, parse_all
from services.common.handlers import handles
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import ServiceRpc, rpc
from services.common.store import Store
from services.common.validation import acting_user

from . import domain
from .models import AWAITING_PAYMENT, CANCELLED, COMPLETE, CREATED, Base, OutboxMessage, ProcessedEvent

log = logging.getLogger(__name__)

#: how often the timers look for overdue orders and stale payment holds
SWEEP_INTERVAL = float(config.env("ORDERS_SWEEP_INTERVAL", "5"))
#: a `created` order this long past expiresAt lost its expiry message: the safety net cancels it
EXPIRY_GRACE_SECONDS = float(config.env("ORDERS_EXPIRY_GRACE_SECONDS", "10"))
#: an order in awaiting:payment this long is released (payments died mid-charge)
HOLD_TIMEOUT_SECONDS = float(config.env("ORDERS_HOLD_TIMEOUT_SECONDS", "120"))


def moved(status: str, reason: str) -> None:
    metrics.ORDER_TRANSITIONS.labels(status, reason).inc()


class OrdersService(HealthMixin, ParkedMessagesMixin):
    name = "orders"

    # More connections than workers (+ timers, outbox relay): a worker waiting on SQLAlchemy's
    # pool under eventlet stalls the others (10 workers on the default pool of 5: 19 vs 82 cancels/s).
    store = Store(Base, OutboxMessage, ProcessedEvent)
    payments = ServiceRpc("payments")

    # -- the gateway: user-facing, the acting user's id first -------------------
    @rpc
    def create_order(self, user_id, user_email, ticket_id):
        with self.store.transaction() as tx:
            order = domain.reserve_ticket(tx, user_id, user_email, ticket_id, config.expiration_window_seconds())
            logs.bind(order_id=order.id, ticket_id=order.ticket_id)
            result = order.to_dict()
        moved(CREATED, "reserved")
        log.info("order %s created: ticket %s reserved until %s", order.id, order.ticket_id, result["expiresAt"])
        return result

    @rpc
    def list_user_orders(self, user_id):
        """The gateway: the acting user's orders, oldest first."""
        with self.store.read() as session:
            return [order.to_dict() for order in domain.orders_of(session, acting_user(user_id))]

    @rpc
    def get_user_order(self, user_id, order_id):
        """The gateway: one order of the acting user (403 for someone else's)."""
        with self.store.read() as session:
            return domain.show_order(session, order_id, acting_user(user_id)).to_dict()

    @rpc
    def cancel_user_order(self, user_id, order_id):
        """The gateway: the buyer cancels their own order."""
        return self._cancel(order_id, acting_user(user_id), reason="buyer")

    # -- operators (no acting user; the broker lets only operators and services call these) --
    @rpc
    def get_order(self, order_id):
        with self.store.read() as session:
            return domain.find(session, order_id).to_dict()

    @rpc
    def cancel_order(self, order_id):
        """Releases the ticket; 409 if complete or being paid."""
        return self._cancel(order_id, None, reason="operator")

    @rpc
    def find_orders(self, user_id=None, status=None, limit=50):
        """Operators: the newest orders, of one user and/or in one status (at most ``limit``, 500)."""
        with self.store.read() as session:
            return [order.to_dict() for order in domain.find_orders(session, user_id, status, limit)]

    @rpc
    def count_orders(self):
        """Operators: how many orders are in each status (``created`` ones are waiting to be paid or to expire)."""
        with self.store.read() as session:
            return domain.count_by_status(session)

    def refresh_metrics(self):
        with self.store.read() as session:
            for status, count in domain.count_by_status(session).items():
                metrics.ORDERS.labels(status).set(count)

    def _cancel(self, order_id, user_id, reason: str):
        """Cancel for its buyer (``user_id``) or an operator (None), and say so once it happened."""
        with self.store.transaction() as tx:
            before = len(tx.outbox_rows)
            order = domain.cancel_order(tx, order_id, user_id).to_dict()
            cancelled_now = len(tx.outbox_rows) > before
        if cancelled_now:
            moved(CANCELLED, reason)
            log.info("order %s cancelled by %s; ticket %s back on sale", order_id,
                     "its buyer" if reason == "buyer" else "an operator", order["ticket"]["id"],
                     extra={"ticket_id": order["ticket"]["id"]})
        return order

    # -- payments --------------------------------------------------------------
    @rpc
    def hold_for_payment(self, order_id, user_id, holder=None):
        """Payments: hold the order for charge attempt ``holder`` (the same holder again: no-op)."""
        with self.store.transaction() as tx:
            order = domain.hold_for_payment(tx, order_id, user_id, holder)
        moved(AWAITING_PAYMENT, "payment")
        log.info("order %s held for payment", order_id)
        return order

    @rpc
    def release_hold(self, order_id, holder=None):
        """Payments (its attempt ``holder``'s hold only) or operators (any hold): let go of the order."""
        with self.store.transaction() as tx:
            was_held = domain.find(tx.session, order_id).status == AWAITING_PAYMENT
            order = domain.release_hold(tx, order_id, holder).to_dict()
        if was_held:
            reason = "expired while being paid" if order["status"] == CANCELLED else "payment not made"
            moved(order["status"], "expired" if order["status"] == CANCELLED else "released")
            log.info("order %s released from its payment hold: now %s (%s)", order_id, order["status"], reason)
        return order

    # -- events ------------------------------------------------------------------
    # Which handlers record event ids (processed_events) to apply an event once: only
    # payment:created. The ticket replica takes a ticket event only if it is newer than what it
    # has (the version), and expiry cancels an order only while it is ``created`` and overdue:
    # applied twice, those do nothing the second time, so they need no record.
    @handles_batch(events.TICKET_CREATED)
    def on_ticket_created(self, tx, event):
        domain.apply_ticket(tx, event)

    @batch_event_handler(events.SOURCE[events.TICKET_UPDATED], events.TICKET_UPDATED)
    def on_ticket_updated(self, batch):
        """Most ticket updates echo this service's own order events (the ticket reserved or released):
        they change nothing the replica keeps (title, price, seller), so they take one read and no
        transaction. A seller's new price or title is applied."""
        tickets = parse_all(events.TICKET_UPDATED, batch)
        with self.store.read() as session:
            news = domain.replica_news(session, tickets)
        if news:
            with self.store.transaction() as tx:
                for delivery, event in zip(batch, tickets):
                    if any(event is new for new in news):
                        with delivery.scope(events.TICKET_UPDATED):
                            domain.apply_ticket(tx, event)

    @batch_event_handler(events.SOURCE[events.EXPIRATION_COMPLETE], events.EXPIRATION_COMPLETE)
    def on_expiration_complete(self, batch):
        """A batch of expiries: one UPDATE, one commit (an order's order:cancelled carries the
        correlation id of its own expiration:complete)."""
        expiries = parse_all(events.EXPIRATION_COMPLETE, batch)
        asked = {event.orderId: delivery for delivery, event in zip(batch, expiries)}
        with self.store.transaction() as tx:
            cancelled = set(domain.expire_all(tx, list(asked), announcing=lambda order_id: asked[order_id].scope(
                events.EXPIRATION_COMPLETE)))
        for order_id, delivery in asked.items():
            with delivery.scope(events.EXPIRATION_COMPLETE):
                if order_id in cancelled:
                    moved(CANCELLED, "expired")
                    log.info("order %s cancelled: its payment window ran out (expiration:complete)", order_id)
                else:
                    log.info("expiration:complete for order %s: nothing to do (paid, being paid or cancelled)",
                             order_id)

    @handles(events.PAYMENT_CREATED)
    def on_payment_created(self, tx, event):
        order = domain.complete(tx, event.orderId)
        if order is not None and order.status == COMPLETE:
            moved(COMPLETE, "paid")
            log.info("order %s complete: paid (payment %s)", event.orderId, event.id,
                     extra={"payment_id": event.id})

    # -- timers ------------------------------------------------------------------
    @timer(interval=SWEEP_INTERVAL)
    def cancel_overdue_orders(self):
        """The safety net: an expiry message that got lost must not keep a ticket reserved forever."""
        with self.store.read() as session:
            overdue = domain.overdue_ids(session, EXPIRY_GRACE_SECONDS)
        for order_id in overdue:
            try:
                # each cancellation its own story: its id goes with order:cancelled to tickets
                with logs.scope(correlation_id=logs.new_correlation_id(), order_id=order_id):
                    with self.store.transaction() as tx:
                        cancelled = domain.expire(tx, order_id)
                    if cancelled:
                        moved(CANCELLED, "safety_net")
                        log.warning("safety net: cancelled order %s, over %ss past its expiresAt "
                                    "(expiry message lost?)", order_id, EXPIRY_GRACE_SECONDS)
            except Exception:
                log.exception("safety net could not cancel order %s; next round", order_id,
                              extra={"order_id": order_id})

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
                                order_id, extra={"order_id": order_id})
                    continue
            except Exception as exc:  # payments unreachable: it cannot vouch that nothing was charged
                log.warning("cannot ask payments about order %s (%r); keeping the hold", order_id, exc,
                            extra={"order_id": order_id})
                continue
            try:
                with logs.scope(correlation_id=logs.new_correlation_id(), order_id=order_id):
                    with self.store.transaction() as tx:
                        order = domain.release_hold(tx, order_id)
                    moved(order.status, "expired" if order.status == CANCELLED else "released")
                    log.warning("released payment hold on order %s after %ss (now %s)",
                                order_id, HOLD_TIMEOUT_SECONDS, order.status)
            except Exception:
                log.exception("could not release the hold on order %s; next round", order_id,
                              extra={"order_id": order_id})
