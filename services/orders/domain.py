"""Order rules, without a database: how an order's status moves, who may see or change an order,
what a new order is, when a ticket update applies to the replica.

The service layer (:mod:`services.orders.service_layer`) loads and saves through
:mod:`services.orders.repository` and asks these rules what to do.

**The state machine is one table.** Every status change is a row of :data:`TRANSITIONS`
(from-status, action → to-status, and the contract event that announces it, if any), and
nothing moves an order otherwise. Every other (status, action) pair is either *refused*
(:data:`REFUSED`, a 409 with the reason) or *nothing to do* (:data:`UNCHANGED`: a repeat, or
a message that arrives late), so every pair has exactly one answer::

    created ──hold──> awaiting:payment ──pay──> complete
     │ │ ^                 │
     │ │ └────release──────┘  (release_expired → cancelled once expiresAt has passed)
     │ └──pay──> complete     (a payment that meets no hold)
     └──cancel / expire──> cancelled

Who asks for which action, and the checks that come first (the owner, the holder, the
clock), are the functions below the table.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.common.validation import OrderInput, validate

from .models import AWAITING_PAYMENT, CANCELLED, COMPLETE, CREATED, STATUSES, Order, TicketReplica

log = logging.getLogger(__name__)

RESERVED = "Ticket is already reserved"
OWN_TICKET = "You cannot buy your own ticket"
NOT_YOURS = "This order is not yours"
CHANGED_MEANWHILE = "The order changed meanwhile, try again"

# -- the state machine ---------------------------------------------------------

#: the buyer (``cancel_user_order``) or an operator (``cancel_order``) cancels
CANCEL = "cancel"
#: expiration:complete, or the safety net, once expiresAt has passed
EXPIRE = "expire"
#: payments holds the order while it charges (``hold_for_payment``)
HOLD = "hold"
#: the hold is let go before expiresAt (``release_hold``, ``release_any_hold``, the stale-hold timer)
RELEASE = "release"
#: the hold is let go once expiresAt has passed: the order is over
RELEASE_EXPIRED = "release_expired"
#: payment:created
PAY = "pay"
ACTIONS = (CANCEL, EXPIRE, HOLD, RELEASE, RELEASE_EXPIRED, PAY)


@dataclass(frozen=True)
class Transition:
    source: str
    action: str
    target: str
    #: the contract event announcing the move (docs/contract.md), None if it stays inside orders
    event: str | None


TRANSITIONS: tuple[Transition, ...] = (
    Transition(CREATED, HOLD, AWAITING_PAYMENT, None),
    Transition(CREATED, CANCEL, CANCELLED, events.ORDER_CANCELLED),
    Transition(CREATED, EXPIRE, CANCELLED, events.ORDER_CANCELLED),
    Transition(CREATED, PAY, COMPLETE, events.ORDER_COMPLETED),
    Transition(AWAITING_PAYMENT, RELEASE, CREATED, None),
    Transition(AWAITING_PAYMENT, RELEASE_EXPIRED, CANCELLED, events.ORDER_CANCELLED),
    Transition(AWAITING_PAYMENT, PAY, COMPLETE, events.ORDER_COMPLETED),
)

#: (status, action) refused with 409 and this reason
REFUSED: dict[tuple[str, str], str] = {
    (AWAITING_PAYMENT, CANCEL): "Order is being paid",
    (COMPLETE, CANCEL): "Cannot cancel a completed order",
    (AWAITING_PAYMENT, HOLD): "Order is being paid",
    (COMPLETE, HOLD): "Order is already paid",
    (CANCELLED, HOLD): "Order is cancelled",
}

#: (status, action) with nothing to do: the action already happened, or came too late to matter
UNCHANGED: frozenset[tuple[str, str]] = frozenset({
    (CANCELLED, CANCEL),  # cancelling a cancelled order
    # expiry stops at a hold, a payment or a cancellation
    (AWAITING_PAYMENT, EXPIRE), (COMPLETE, EXPIRE), (CANCELLED, EXPIRE),
    # a release of a hold that is no longer there
    *((status, action) for status in (CREATED, COMPLETE, CANCELLED) for action in (RELEASE, RELEASE_EXPIRED)),
    (COMPLETE, PAY),  # a second payment:created
    # a payment that meets a cancelled order (an operator released its hold meanwhile): it stays
    # cancelled and payments refunds the charge (it learns of the cancellation by order:cancelled)
    (CANCELLED, PAY),
})

_MOVES = {(t.source, t.action): t for t in TRANSITIONS}


def step(status: str, action: str) -> Transition | None:
    """The row of :data:`TRANSITIONS` that ``action`` takes from ``status``; None if there is
    nothing to do; :class:`Conflict` (409, the reason of :data:`REFUSED`) if it is not allowed."""
    move = _MOVES.get((status, action))
    if move is not None:
        return move
    if (status, action) in REFUSED:
        raise Conflict(REFUSED[status, action])
    if (status, action) in UNCHANGED:
        return None
    raise ValueError(f"no rule for {action!r} on an order in status {status!r}")


def move(order: Order, transition: Transition, **values) -> None:
    """Apply ``transition`` to ``order`` (and set ``values``, e.g. the hold's columns); saving it
    bumps the version (the mapper's version column guards every UPDATE)."""
    if order.status != transition.source:
        raise ValueError(f"order {order.id} is {order.status}, not {transition.source}")
    order.status = transition.target
    for name, value in values.items():
        setattr(order, name, value)


def announcement(transition: Transition, order) -> tuple[str, dict] | None:
    """The event (name, payload) that announces ``transition`` of ``order`` (saved: its new version),
    or None if the move stays inside orders (created ↔ awaiting:payment)."""
    if transition.event == events.ORDER_CANCELLED:
        return transition.event, {"id": order.id, "version": order.version, "ticket": {"id": order.ticket_id}}
    if transition.event == events.ORDER_COMPLETED:
        return transition.event, {"id": order.id, "version": order.version, "userId": order.user_id,
                                  "userEmail": order.user_email, "ticket": order.ticket_summary()}
    return None


# -- who may do what -----------------------------------------------------------

def check_owner(order: Order, user_id: str) -> Order:
    """The buyer's own order, or 403."""
    if order.user_id != user_id:
        raise Forbidden(NOT_YOURS)
    return order


def cancellation(order: Order) -> Transition | None:
    """A cancel (the buyer's, after :func:`check_owner`, or an operator's): 409 if complete or being paid."""
    return step(order.status, CANCEL)


def expiry() -> Transition:
    """The one move of expiration:complete and the safety net (created → cancelled), for an order
    whose expiresAt has passed. The repository applies it in one conditional UPDATE (many orders
    expire at once): an order in any other status has nothing to do (:data:`UNCHANGED`), and an
    early or forged expiration:complete finds expiresAt still ahead and changes nothing."""
    (transition,) = (t for t in TRANSITIONS if t.action == EXPIRE)
    return transition


def hold(order: Order, holder: str | None, now: datetime) -> Transition | None:
    """created → awaiting:payment, so that expiry and a payment cannot both win.

    The same ``holder`` (payments' charge attempt) asking again (its request was redelivered
    after a crash) finds the hold it already has: None. Anyone else 409, and so does an
    order whose expiresAt has passed."""
    if order.status == AWAITING_PAYMENT and holder is not None and order.held_by == holder:
        return None
    transition = step(order.status, HOLD)
    if order.expires_at <= now:
        raise Conflict("Order has expired")
    return transition


def payable(order: Order) -> dict:
    """What payments charges: the price the order was reserved at, in cents."""
    return {**order.to_dict(), "amountCents": int(order.reserved_price * 100)}


def release(order: Order, now: datetime) -> Transition | None:
    """Let go of any hold (an operator's ``release_any_hold``, the stale-hold timer): back to
    created, or cancelled if expiresAt has passed; nothing if the order is not held."""
    return step(order.status, RELEASE_EXPIRED if order.expires_at <= now else RELEASE)


def release_by(order: Order, holder: str, now: datetime) -> Transition | None:
    """Payments lets go of the hold of its charge attempt ``holder``, and of no other: a late
    release of an earlier attempt must not free a hold a later one has taken. (A hold taken
    without a holder is anyone's.)"""
    if order.status == AWAITING_PAYMENT and order.held_by not in (None, holder):
        log.info("not releasing order %s: held by %s, not %s", order.id, order.held_by, holder)
        return None
    return release(order, now)


def payment(order: Order) -> Transition | None:
    """payment:created — the order is paid (nothing more for a paid or a cancelled one)."""
    transition = step(order.status, PAY)
    if transition is None and order.status == CANCELLED:
        log.warning("payment for cancelled order %s: it stays cancelled and payments refunds the charge",
                    order.id)
    return transition


# -- reading -------------------------------------------------------------------

def status_filter(status: str | None) -> str | None:
    """Operators' search by status: one of :data:`STATUSES`, or 400."""
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}", field="status")
    return status


def search_limit(limit) -> int:
    return max(1, min(int(limit), 500))


# -- creating ------------------------------------------------------------------

def ticket_id_of(ticket_id) -> str:
    """The ticket a buyer asks for: a valid id, or 400."""
    return validate(OrderInput, {"ticketId": ticket_id}).ticketId


def new_order(user_id: str, user_email: str, ticket: TicketReplica | None, window_seconds: float,
              now: datetime) -> Order:
    """A ``created`` order reserving ``ticket`` for ``window_seconds`` (404 for an unknown ticket,
    409 for the seller's own). One active order per ticket is the database's rule (the partial
    unique index): the repository reports a second one, which is :data:`RESERVED`."""
    if ticket is None:
        raise NotFound("Ticket not found")
    if ticket.user_id == user_id:
        raise Conflict(OWN_TICKET)
    order = Order(user_id=user_id, user_email=user_email, ticket_id=ticket.id, status=CREATED, price=ticket.price,
                  expires_at=now + timedelta(seconds=window_seconds), created_at=now)
    order.ticket = ticket
    return order


def creation(order: Order) -> dict:
    """The payload of order:created, for an order just saved."""
    return {
        "id": order.id, "version": order.version, "status": order.status, "userId": order.user_id,
        "userEmail": order.user_email, "expiresAt": events.isoformat(order.expires_at),
        "ticket": {"id": order.ticket_id, "price": order.price}}


# -- timers --------------------------------------------------------------------

def overdue_cutoff(grace_seconds: float, now: datetime) -> datetime:
    """created orders whose expiresAt is before this lost their expiry message."""
    return now - timedelta(seconds=grace_seconds)


def stale_hold_cutoff(hold_seconds: float, now: datetime) -> datetime:
    """awaiting:payment orders held since before this: payments may have died mid-charge."""
    return now - timedelta(seconds=hold_seconds)


# -- the ticket replica ----------------------------------------------------------

def replica_update(replica: TicketReplica | None, event: events.TicketChanged) -> bool:
    """Whether ticket:created/updated applies now: if newer than the replica. A ticket event carries
    the ticket's whole state, so the newest version wins and a version skipped (an update that
    changed nothing kept here: :func:`is_news`) is not waited for. The replica starts with v0
    (ticket:created): an update of a ticket not seen yet raises :class:`NotYetApplicable`."""
    if replica is None:
        if event.version != 0:
            raise NotYetApplicable(f"ticket {event.id} v{event.version} before its v0")
        return True
    if event.version <= replica.version:
        log.info("dropping stale ticket %s v%d (replica at v%d)", event.id, event.version, replica.version)
        return False
    return True


def is_news(replica, event: events.TicketChanged) -> bool:
    """Does ``event`` change what the replica keeps (title, price, seller), or can it not be judged
    without applying it (a ticket not seen yet)? A newer version with the same title, price and
    seller (the ticket reserved or released by an order) is not news."""
    return replica is None or (event.version > replica.version and (event.title, event.price, event.userId)
                               != (replica.title, replica.price, replica.user_id))


def new_replica(event: events.TicketChanged) -> TicketReplica:
    return TicketReplica(id=event.id, title=event.title, price=event.price, user_id=event.userId,
                         version=event.version)


def update_replica(replica: TicketReplica, event: events.TicketChanged) -> TicketReplica:
    replica.title, replica.price, replica.user_id, replica.version = (event.title, event.price, event.userId,
                                                                      event.version)
    return replica
