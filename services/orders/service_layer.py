"""The orders service layer: each use of an order in one transaction, and the calls to other services.

:mod:`services.orders.service` parses a request and calls one function here; the function
opens the transaction (``store``: the service's :class:`~services.common.store.Store`), loads
through :mod:`~services.orders.repository`, asks :mod:`~services.orders.domain` what the rules
say, saves, emits the event of the move in the same transaction, and logs and counts it once
it is committed. Event handlers get their transaction from ``@handles`` (``tx``), which records
the event as applied in it.

Every status change goes through :func:`_apply` (or, for expiry, the repository's conditional
UPDATE of the same row of the table): there is no other way to move an order.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime

from services.common import events, logs, metrics
from services.common.errors import Conflict
from services.common.handlers import NotYetApplicable
from services.common.validation import is_valid_id

from . import domain, repository
from .models import AWAITING_PAYMENT, CANCELLED, COMPLETE, CREATED, Order

log = logging.getLogger(__name__)


def moved(status: str, reason: str) -> None:
    metrics.ORDER_TRANSITIONS.labels(status, reason).inc()


def _announce(tx, transition: domain.Transition, order) -> None:
    announced = domain.announcement(transition, order)
    if announced is not None:
        name, payload = announced
        tx.emit(name, **payload)


def _apply(tx, order: Order, transition: domain.Transition | None, **values) -> domain.Transition | None:
    """Make the move the table gave (None: nothing to do), save it (the version goes up) and emit
    its event in the same transaction."""
    if transition is None:
        return None
    domain.move(order, transition, **values)
    repository.save(tx.session)
    _announce(tx, transition, order)
    return transition


# -- reads -----------------------------------------------------------------------

def orders_of(store, user_id: str) -> list[dict]:
    with store.read() as session:
        return [order.to_dict() for order in repository.orders_of(session, user_id)]


def order_of(store, user_id: str, order_id: str) -> dict:
    """One order of its buyer (403 for someone else's)."""
    with store.read() as session:
        return domain.check_owner(repository.find(session, order_id), user_id).to_dict()


def any_order(store, order_id: str) -> dict:
    with store.read() as session:
        return repository.find(session, order_id).to_dict()


def search(store, user_id: str | None, status: str | None, limit) -> list[dict]:
    status, limit = domain.status_filter(status), domain.search_limit(limit)
    with store.read() as session:
        return [order.to_dict() for order in repository.search(session, user_id, status, limit)]


def count_by_status(store) -> dict[str, int]:
    with store.read() as session:
        return repository.count_by_status(session)


def refresh_metrics(store) -> None:
    for status, count in count_by_status(store).items():
        metrics.ORDERS.labels(status).set(count)


# -- the buyer and operators -------------------------------------------------------

def reserve(store, user_id: str, user_email: str, ticket_id, window_seconds: float,
            now: datetime | None = None) -> Order:
    """A new ``created`` order for the ticket (order:created), or 400/404/409."""
    ticket_id = domain.ticket_id_of(ticket_id)
    with store.transaction() as tx:
        order = domain.new_order(user_id, user_email, repository.ticket(tx.session, ticket_id), window_seconds,
                                 now or events.utcnow())
        if not repository.insert(tx.session, order):
            raise Conflict(domain.RESERVED)
        tx.emit(events.ORDER_CREATED, **domain.creation(order))
        logs.bind(order_id=order.id, ticket_id=order.ticket_id)
    moved(CREATED, "reserved")
    log.info("order %s created: ticket %s reserved until %s", order.id, order.ticket_id,
             events.isoformat(order.expires_at))
    return order


def cancel_for_buyer(store, user_id: str, order_id: str) -> Order:
    """The buyer cancels their own order (403 for someone else's)."""
    return _cancel(store, order_id, lambda order: domain.check_owner(order, user_id), reason="buyer")


def cancel_any(store, order_id: str) -> Order:
    """An operator cancels any order."""
    return _cancel(store, order_id, lambda order: order, reason="operator")


def _cancel(store, order_id: str, allowed, reason: str) -> Order:
    """Releases the ticket (order:cancelled); 409 if complete or being paid; a cancelled order stays as it is."""
    with store.transaction() as tx:
        order = allowed(repository.find(tx.session, order_id, lock=True))
        cancelled_now = _apply(tx, order, domain.cancellation(order))
    if cancelled_now:
        moved(CANCELLED, reason)
        log.info("order %s cancelled by %s; ticket %s back on sale", order_id,
                 "its buyer" if reason == "buyer" else "an operator", order.ticket_id,
                 extra={"ticket_id": order.ticket_id})
    return order


# -- payments ------------------------------------------------------------------------

def hold(store, order_id: str, user_id: str, holder: str | None, now: datetime | None = None) -> dict:
    """Payments holds the buyer's order for its charge attempt ``holder``: what to charge."""
    now = now or events.utcnow()
    with store.transaction() as tx:
        order = domain.check_owner(repository.find(tx.session, order_id, lock=True), user_id)
        _apply(tx, order, domain.hold(order, holder, now), held_at=now, held_by=holder)
        payable = domain.payable(order)
    moved(AWAITING_PAYMENT, "payment")
    log.info("order %s held for payment", order_id)
    return payable


def release_by(store, order_id: str, holder: str, now: datetime | None = None) -> Order:
    """Payments lets go of its attempt ``holder``'s hold (and of no other)."""
    order, released = _release(store, order_id, lambda order, at: domain.release_by(order, holder, at), now)
    _log_release(order, released)
    return order


def release_any(store, order_id: str, now: datetime | None = None) -> Order:
    """An operator lets go of whatever hold the order has."""
    order, released = _release(store, order_id, domain.release, now)
    _log_release(order, released)
    return order


def _release(store, order_id: str, rule, now: datetime | None) -> tuple[Order, bool]:
    """awaiting:payment → created (or → cancelled if it expired meanwhile) if ``rule`` lets go of
    the hold; otherwise nothing. The order, and whether it was released."""
    with store.transaction() as tx:
        order = repository.find(tx.session, order_id, lock=True)
        released = _apply(tx, order, rule(order, now or events.utcnow()), held_at=None, held_by=None)
    if released:
        moved(order.status, "expired" if order.status == CANCELLED else "released")
    return order, released is not None


def _log_release(order: Order, released: bool) -> None:
    if released:
        reason = "expired while being paid" if order.status == CANCELLED else "payment not made"
        log.info("order %s released from its payment hold: now %s (%s)", order.id, order.status, reason)


# -- events ----------------------------------------------------------------------------

def expire_all(tx, order_ids, now: datetime | None = None, announcing=None) -> list[str]:
    """expiration:complete (and the safety net): cancel each order that is still ``created`` and
    whose time is up, all in one UPDATE; returns the ids of those it cancelled (an unknown or
    malformed id is nothing to do).

    ``announcing(order_id)``: a context manager around the emit of that order's order:cancelled
    (e.g. the log context of the message that asked for it)."""
    valid = []
    for order_id in dict.fromkeys(order_ids):
        if is_valid_id(order_id):
            valid.append(order_id)
        else:
            log.warning("expiration:complete for a malformed order id %r; ignoring it", order_id)
    if not valid:
        return []
    transition = domain.expiry()
    rows = repository.move_all_if_due(tx.session, valid, transition, now or events.utcnow())
    # paid, being paid, already cancelled, or unknown: expiry has nothing to do for the others
    for row in rows:
        with announcing(row.id) if announcing else nullcontext():
            _announce(tx, transition, row)
    return [row.id for row in rows]


def on_expirations(store, expiries: dict) -> None:
    """A batch of expiration:complete, ``{order id: its message's log scope}``: one UPDATE, one
    commit (each order:cancelled carries the correlation id of its own expiration:complete)."""
    with store.transaction() as tx:
        cancelled = set(expire_all(tx, list(expiries), announcing=lambda order_id: expiries[order_id]()))
    for order_id, scope in expiries.items():
        with scope():
            if order_id in cancelled:
                moved(CANCELLED, "expired")
                log.info("order %s cancelled: its payment window ran out (expiration:complete)", order_id)
            else:
                log.info("expiration:complete for order %s: nothing to do (paid, being paid or cancelled)",
                         order_id)


def complete(tx, order_id: str) -> Order:
    """payment:created — the order is paid (a paid or cancelled order stays as it is)."""
    order = repository.find(tx.session, order_id, lock=True)
    _apply(tx, order, domain.payment(order), held_at=None)
    return order


def on_payment(tx, event) -> None:
    if complete(tx, event.orderId).status == COMPLETE:
        moved(COMPLETE, "paid")
        log.info("order %s complete: paid (payment %s)", event.orderId, event.id, extra={"payment_id": event.id})


def ticket_news(store, tickets: list[events.TicketChanged]) -> list[events.TicketChanged]:
    """The ticket events that change what the replica keeps (:func:`domain.is_news`): most
    ticket:updated echo this service's own order events and take this one read, no transaction."""
    with store.read() as session:
        kept = repository.replica_states(session, [event.id for event in tickets])
    return [event for event in tickets if domain.is_news(kept.get(event.id), event)]


def on_ticket_updates(store, updates: list) -> None:
    """A batch of ticket:updated, ``[(event, its message's log scope)]``: the news among them
    (:func:`ticket_news`) applied in one transaction, each in the log scope of its message; the
    echoes take one read and no transaction."""
    news = ticket_news(store, [event for event, _ in updates])
    if news:
        with store.transaction() as tx:
            for event, scope in updates:
                if any(event is new for new in news):
                    with scope():
                        apply_ticket(tx, event)


def apply_ticket(tx, event: events.TicketChanged):
    """ticket:created/updated, applied to the replica if newer (:func:`domain.replica_update`);
    stale ones are dropped (None)."""
    replica = repository.ticket(tx.session, event.id)
    if not domain.replica_update(replica, event):
        return None
    if replica is None:
        replica = domain.new_replica(event)
        if not repository.insert(tx.session, replica):
            raise NotYetApplicable(f"ticket {event.id} v0 raced; retrying")
        return replica
    domain.update_replica(replica, event)
    tx.session.flush()
    return replica


# -- timers --------------------------------------------------------------------------------

def cancel_overdue(store, grace_seconds: float, now: datetime | None = None) -> None:
    """The safety net: an expiry message that got lost must not keep a ticket reserved forever."""
    cutoff = domain.overdue_cutoff(grace_seconds, now or events.utcnow())
    with store.read() as session:
        overdue = repository.overdue_ids(session, cutoff)
    if not overdue:
        return
    # each cancellation its own story: its id goes with order:cancelled to tickets
    stories = {order_id: logs.new_correlation_id() for order_id in overdue}

    def story(order_id):
        return logs.scope(correlation_id=stories[order_id], order_id=order_id)

    try:
        with store.transaction() as tx:
            cancelled = expire_all(tx, overdue, announcing=story)
    except Exception:
        log.exception("safety net could not cancel %d overdue orders; next round", len(overdue))
        return
    for order_id in cancelled:
        moved(CANCELLED, "safety_net")
        with story(order_id):
            log.warning("safety net: cancelled order %s, over %ss past its expiresAt (expiry message lost?)",
                        order_id, grace_seconds)


def release_stale_holds(store, payments, hold_seconds: float, now: datetime | None = None) -> None:
    """Payments holds an order while it charges; if it died before sending the charge, the
    hold is released here. A charge whose outcome payments does not know yet keeps the hold
    (payments' reconciliation settles it), so an order is never both charged and cancelled."""
    cutoff = domain.stale_hold_cutoff(hold_seconds, now or events.utcnow())
    with store.read() as session:
        stale = repository.stale_hold_ids(session, cutoff)
    for order_id in stale:
        try:
            if payments.has_unsettled_charge(order_id):
                log.warning("order %s is held for a charge payments is still settling; keeping the hold",
                            order_id, extra={"order_id": order_id})
                continue
        except Exception as exc:  # payments unreachable: it cannot vouch that nothing was charged
            log.warning("cannot ask payments about order %s (%r); keeping the hold", order_id, exc,
                        extra={"order_id": order_id})
            continue
        try:
            with logs.scope(correlation_id=logs.new_correlation_id(), order_id=order_id):
                order, released = _release(store, order_id, domain.release, None)
                if released:
                    log.warning("released payment hold on order %s after %ss (now %s)",
                                order_id, hold_seconds, order.status)
        except Exception:
            log.exception("could not release the hold on order %s; next round", order_id,
                          extra={"order_id": order_id})
