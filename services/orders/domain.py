"""Order rules: reserving a ticket, who may see or cancel an order, how status moves, the ticket replica.

Status moves through :func:`_move` (expiry: one conditional UPDATE), which bumps the version (the
mapper's version column guards every UPDATE) and, where the contract (docs/contract.md) has an event for
the new status, emits it in the same transaction.

    created ──hold_for_payment──> awaiting:payment ──payment:created──> complete
       │  ^                            │
       │  └────────release_hold────────┘ (or → cancelled if expired meanwhile)
       └──cancel / expiration:complete / safety net──> cancelled
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.common.validation import IdOf, Input, is_valid_id, validate

from .models import AWAITING_PAYMENT, CANCELLED, COMPLETE, CREATED, STATUSES, Order, TicketReplica

log = logging.getLogger(__name__)

RESERVED = "Ticket is already reserved"
OWN_TICKET = "You cannot buy your own ticket"


class OrderInput(Input):
    ticketId: IdOf("ticketId")  # noqa: N815 - the JSON name


# -- reading -----------------------------------------------------------------

def find(session, order_id: str, *, for_update: bool = False) -> Order:
    """One order with its ticket; ``for_update`` serialises changes of it (row lock / SQLite write lock)."""
    if not is_valid_id(order_id):
        raise NotFound("Order not found")
    query = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if for_update:
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=Order)
        else:
            # SQLite has no row locks; a no-op write takes the (database-wide) write lock now,
            # so the read that follows sees the latest committed state.
            session.execute(update(Order).where(Order.id == order_id).values(id=Order.id)
                            .execution_options(synchronize_session=False))
    order = session.scalars(query).first()
    if order is None:
        raise NotFound("Order not found")
    return order


def show_order(session, order_id: str, user_id: str) -> Order:
    order = find(session, order_id)
    if order.user_id != user_id:
        raise Forbidden("This order is not yours")
    return order


def orders_of(session, user_id: str) -> list[Order]:
    """The user's orders, oldest first."""
    query = select(Order).where(Order.user_id == user_id).order_by(Order.created_at, Order.id)
    return list(session.scalars(query).unique())


def find_orders(session, user_id: str | None = None, status: str | None = None, limit: int = 50) -> list[Order]:
    """Operators' search: newest first, of one user and/or in one status."""
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}", field="status")
    query = select(Order).order_by(Order.created_at.desc(), Order.id).limit(max(1, min(int(limit), 500)))
    if user_id is not None:
        query = query.where(Order.user_id == str(user_id))
    if status is not None:
        query = query.where(Order.status == status)
    return list(session.scalars(query).unique())


def count_by_status(session) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(select(Order.status, func.count()).group_by(Order.status)):
        counts[status] = count
    return counts


# -- creating ----------------------------------------------------------------

def reserve_ticket(tx, user_id: str, user_email: str, ticket_id, window_seconds: float,
                   now: datetime | None = None) -> Order:
    data = validate(OrderInput, {"ticketId": ticket_id})
    now = now or events.utcnow()
    ticket = tx.session.get(TicketReplica, data.ticketId)
    if ticket is None:
        raise NotFound("Ticket not found")
    if ticket.user_id == user_id:
        raise Conflict(OWN_TICKET)
    order = Order(user_id=user_id, user_email=user_email, ticket_id=ticket.id, status=CREATED, price=ticket.price,
                  expires_at=now + timedelta(seconds=window_seconds), created_at=now)
    order.ticket = ticket
    tx.session.add(order)
    try:
        tx.session.flush()
    except IntegrityError:
        # The partial unique index: another active order holds this ticket (however close the race).
        raise Conflict(RESERVED) from None
    tx.emit(events.ORDER_CREATED, id=order.id, version=order.version, status=order.status,
            userId=order.user_id, userEmail=order.user_email, expiresAt=events.isoformat(order.expires_at),
            ticket={"id": ticket.id, "price": order.price})
    return order


# -- status changes ----------------------------------------------------------

def _move(tx, order: Order, status: str, **values) -> Order:
    order.status = status
    for name, value in values.items():
        setattr(order, name, value)
    try:
        tx.session.flush()  # UPDATE ... WHERE version = :old; version + 1
    except StaleDataError:
        raise Conflict("The order changed meanwhile, try again") from None
    if status == CANCELLED:
        tx.emit(events.ORDER_CANCELLED, id=order.id, version=order.version, ticket={"id": order.ticket_id})
    elif status == COMPLETE:
        tx.emit(events.ORDER_COMPLETED, id=order.id, version=order.version, userId=order.user_id,
                userEmail=order.user_email, ticket=order.ticket_summary())
    # created <-> awaiting:payment is internal to orders: no event announces it.
    return order


def cancel_order(tx, order_id: str, user_id: str | None = None) -> Order:
    """The buyer's cancel (``user_id`` given: owner only) or an operator's (no owner check)."""
    order = find(tx.session, order_id, for_update=True)
    if user_id is not None and order.user_id != user_id:
        raise Forbidden("This order is not yours")
    if order.status == CANCELLED:
        return order
    if order.status == COMPLETE:
        raise Conflict("Cannot cancel a completed order")
    if order.status == AWAITING_PAYMENT:
        raise Conflict("Order is being paid")
    return _move(tx, order, CANCELLED)


def expire(tx, order_id: str, now: datetime | None = None) -> bool:
    """expiration:complete — cancel the order only if it is still ``created`` and its time is up.
    True if it was cancelled.

    One conditional UPDATE (no read first): this is the hot path when many orders expire at once.
    An early or forged expiration:complete finds the order's expiresAt still ahead and does nothing.
    """
    return order_id in expire_all(tx, [order_id], now)


def expire_all(tx, order_ids, now: datetime | None = None, announcing=None) -> list[str]:
    """:func:`expire` for many orders in one UPDATE; returns the ids of those it cancelled.

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
    now = now or events.utcnow()
    rows = tx.session.execute(
        update(Order).where(Order.id.in_(valid), Order.status == CREATED, Order.expires_at <= now)
        .values(status=CANCELLED, version=Order.version + 1)
        .returning(Order.id, Order.version, Order.ticket_id)
        .execution_options(synchronize_session=False)
    ).all()
    # paid, being paid, already cancelled, or unknown: expiry has nothing to do for the others
    for row in rows:
        with announcing(row.id) if announcing else nullcontext():
            tx.emit(events.ORDER_CANCELLED, id=row.id, version=row.version, ticket={"id": row.ticket_id})
    return [row.id for row in rows]


def hold_for_payment(tx, order_id: str, user_id: str, holder: str | None = None,
                     now: datetime | None = None) -> dict:
    """created → awaiting:payment, so that expiry and a payment cannot both win.

    ``holder`` (payments' charge attempt) is recorded: the same holder asking again (its
    request was redelivered after a crash) gets the hold it already has, anyone else 409."""
    now = now or events.utcnow()
    order = find(tx.session, order_id, for_update=True)
    if order.user_id != user_id:
        raise Forbidden("This order is not yours")
    if order.status == AWAITING_PAYMENT and holder is not None and order.held_by == holder:
        return _payable(order)
    if order.status == CANCELLED:
        raise Conflict("Order is cancelled")
    if order.status == COMPLETE:
        raise Conflict("Order is already paid")
    if order.status == AWAITING_PAYMENT:
        raise Conflict("Order is being paid")
    if order.expires_at <= now:
        raise Conflict("Order has expired")
    _move(tx, order, AWAITING_PAYMENT, held_at=now, held_by=holder)
    return _payable(order)


def _payable(order: Order) -> dict:
    """What payments charges: the price the order was reserved at, in cents."""
    return {**order.to_dict(), "amountCents": int(order.reserved_price * 100)}


def release_hold(tx, order_id: str, holder: str | None = None, now: datetime | None = None) -> Order:
    """awaiting:payment → created (or → cancelled if it expired meanwhile); otherwise nothing.

    With ``holder``, only that holder's hold is released (a late release of an earlier attempt
    must not free a hold a later one has taken); without, any hold (an operator's release)."""
    now = now or events.utcnow()
    order = find(tx.session, order_id, for_update=True)
    if order.status != AWAITING_PAYMENT:
        return order
    if holder is not None and order.held_by is not None and order.held_by != holder:
        log.info("not releasing order %s: held by %s, not %s", order_id, order.held_by, holder)
        return order
    if order.expires_at <= now:
        return _move(tx, order, CANCELLED, held_at=None, held_by=None)
    return _move(tx, order, CREATED, held_at=None, held_by=None)


def complete(tx, order_id: str) -> Order | None:
    """payment:created — the order is paid."""
    order = find(tx.session, order_id, for_update=True)
    if order.status == COMPLETE:
        return order
    if order.status == CANCELLED:
        # Only if an operator released the hold of a charge that then succeeded: payments
        # refunds a payment of a cancelled order (it learns of the cancellation by order:cancelled).
        log.warning("payment for cancelled order %s: it stays cancelled and payments refunds the charge",
                    order_id)
        return order
    return _move(tx, order, COMPLETE, held_at=None)


# -- timers --------------------------------------------------------------------

def overdue_ids(session, grace_seconds: float, now: datetime | None = None, limit: int = 500) -> list[str]:
    """created orders more than ``grace_seconds`` past expiresAt (their expiry message was lost)."""
    cutoff = (now or events.utcnow()) - timedelta(seconds=grace_seconds)
    query = (select(Order.id).where(Order.status == CREATED, Order.expires_at < cutoff)
             .order_by(Order.expires_at).limit(limit))
    return list(session.scalars(query))


def stale_hold_ids(session, hold_seconds: float, now: datetime | None = None, limit: int = 500) -> list[str]:
    """awaiting:payment orders held longer than ``hold_seconds`` (payments died mid-charge)."""
    cutoff = (now or events.utcnow()) - timedelta(seconds=hold_seconds)
    query = (select(Order.id).where(Order.status == AWAITING_PAYMENT, Order.held_at < cutoff)
             .order_by(Order.held_at).limit(limit))
    return list(session.scalars(query))


# -- the ticket replica ----------------------------------------------------------

def apply_ticket(tx, event: events.TicketChanged) -> TicketReplica | None:
    """Apply ticket:created/updated if newer than the replica; stale ones drop.

    A ticket event carries the ticket's whole state, so the newest version wins and a version
    skipped (an update that changed nothing kept here: :func:`replica_news`) is not waited for.
    The replica starts with v0 (ticket:created): an update of a ticket not seen yet waits."""
    ticket = tx.session.get(TicketReplica, event.id)
    if ticket is None:
        if event.version != 0:
            raise NotYetApplicable(f"ticket {event.id} v{event.version} before its v0")
        ticket = TicketReplica(id=event.id, title=event.title, price=event.price, user_id=event.userId,
                               version=event.version)
        tx.session.add(ticket)
        try:
            tx.session.flush()
        except IntegrityError:  # a concurrent delivery of v0 won
            raise NotYetApplicable(f"ticket {event.id} v0 raced; retrying") from None
        return ticket
    if event.version <= ticket.version:
        log.info("dropping stale ticket %s v%d (replica at v%d)", event.id, event.version, ticket.version)
        return None
    ticket.title, ticket.price, ticket.user_id, ticket.version = event.title, event.price, event.userId, event.version
    tx.session.flush()
    return ticket


def replica_news(session, tickets: list[events.TicketChanged]) -> list[events.TicketChanged]:
    """The ticket events that change what the replica keeps (title, price, seller), or that it cannot
    judge without :func:`apply_ticket` (a ticket it has not got yet). An event newer than the
    replica with the same title, price and seller (the ticket reserved or released) is not news."""
    ids = {event.id for event in tickets}
    kept = {row.id: row for row in session.execute(
        select(TicketReplica.id, TicketReplica.version, TicketReplica.title, TicketReplica.price,
               TicketReplica.user_id).where(TicketReplica.id.in_(ids)))}
    news = []
    for event in tickets:
        replica = kept.get(event.id)
        if replica is None or (event.version > replica.version and (event.title, event.price, event.userId)
                               != (replica.title, replica.price, replica.user_id)):
            news.append(event)
    return news
