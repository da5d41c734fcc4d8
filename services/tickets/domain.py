"""Ticket rules: who may edit, what a reserved ticket allows, how versions move, paging."""
from __future__ import annotations

import base64
import json
import logging
from contextlib import nullcontext
from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.common.store import Store
from services.common.validation import TicketInput, is_valid_id, validate

from .models import CancelledOrder, Ticket

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
#: a cursor we issue is about 80 characters
MAX_CURSOR_LENGTH = 200
MAX_PAGE = 100


def find(session, ticket_id: str, *, for_update: bool = False) -> Ticket:
    if not is_valid_id(ticket_id):
        raise NotFound("Ticket not found")
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = Store.lock_rows(query)
    ticket = session.scalars(query).first()
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket


def list_ticket(tx, user_id: str, title, price, request_id: str | None = None) -> Ticket:
    """Put a ticket on sale. ``request_id`` makes it idempotent: RabbitMQ redelivers an RPC whose
    worker died, and the second delivery must return the first ticket, not list another."""
    data = validate(TicketInput, {"title": title, "price": price})
    if request_id:
        existing = tx.session.scalars(select(Ticket).where(Ticket.request_id == request_id)).first()
        if existing is not None:
            if existing.user_id == user_id:
                return existing
            # The gateway scopes keys per user; a caller that does not must not collide into a 500.
            raise Conflict("This request id was already used", field="requestId")
    ticket = Ticket(title=data.title, price=data.price, user_id=user_id, version=0, created_at=events.utcnow(),
                    request_id=request_id)
    tx.session.add(ticket)
    tx.session.flush()
    tx.emit(events.TICKET_CREATED, **ticket.to_event())
    return ticket


def edit_ticket(tx, ticket_id: str, user_id: str, title, price) -> Ticket:
    ticket = find(tx.session, ticket_id, for_update=True)
    if ticket.user_id != user_id:
        raise Forbidden("You do not own this ticket")
    if ticket.order_id is not None:
        raise Conflict("Cannot edit a reserved ticket")
    data = validate(TicketInput, {"title": title, "price": price})
    ticket.title, ticket.price = data.title, data.price
    _changed(tx, ticket)
    return ticket


def reserve(tx, ticket_id: str, order_id: str) -> None:
    """order:created — the ticket is held by that order (and off sale).

    Order events may arrive in any order. An order already cancelled (its order:cancelled came
    first) reserves nothing. A ticket still held by another order waits (retried later): orders
    allows one active order per ticket, so that other order's order:cancelled is on its way."""
    ticket = find(tx.session, ticket_id, for_update=True)
    if ticket.order_id == order_id:
        return
    if tx.session.get(CancelledOrder, order_id) is not None:
        log.info("order:created of %s after its order:cancelled: ticket %s stays as it is", order_id, ticket_id)
        return
    if ticket.sold_at is not None:
        log.warning("order:created of %s for ticket %s, already sold to order %s: ignored",
                    order_id, ticket_id, ticket.order_id)
        return
    if ticket.order_id is not None:
        raise NotYetApplicable(f"ticket {ticket_id} is held by order {ticket.order_id}; waiting for its "
                               f"order:cancelled before reserving it for {order_id}")
    ticket.order_id = order_id
    _changed(tx, ticket)


def release(tx, ticket_id: str, order_id: str) -> None:
    """order:cancelled — back on sale if that order holds it (not another one, and not sold)."""
    release_all(tx, [(ticket_id, order_id)])


def release_all(tx, cancelled: list[tuple[str, str]], announcing=None) -> None:
    """:func:`release` for many (ticket id, order id) pairs: a few statements for all of them.

    Every cancellation is recorded (so that a late order:created reserves nothing); the tickets
    are locked in id order (two batches never wait on each other in a circle). ``announcing(order_id)``:
    a context manager around the emit of the ticket:updated that order's cancellation causes."""
    pairs = dict((order_id, ticket_id) for ticket_id, order_id in cancelled)
    known = set(tx.session.scalars(select(CancelledOrder.order_id).where(CancelledOrder.order_id.in_(pairs))))
    now = events.utcnow()
    tx.session.add_all([CancelledOrder(order_id=order_id, ticket_id=ticket_id, cancelled_at=now)
                        for order_id, ticket_id in pairs.items() if order_id not in known])
    ids = sorted({ticket_id for ticket_id in pairs.values() if is_valid_id(ticket_id)})
    tickets = tx.session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id)
                                 .with_for_update()).all()
    if len(tickets) < len(set(pairs.values())):
        raise NotFound("Ticket not found")
    for ticket in tickets:
        order_id = ticket.order_id
        if order_id is None or pairs.get(order_id) != ticket.id or ticket.sold_at is not None:
            continue
        ticket.order_id = None
        with announcing(order_id) if announcing else nullcontext():
            _changed(tx, ticket)


def mark_sold(tx, ticket_id: str, order_id: str) -> None:
    """order:completed — off sale for good."""
    ticket = find(tx.session, ticket_id, for_update=True)
    if ticket.sold_at is not None:
        return
    ticket.sold_at = events.utcnow()
    if ticket.order_id != order_id:
        ticket.order_id = order_id
        _changed(tx, ticket)


def _changed(tx, ticket: Ticket) -> None:
    ticket.version += 1
    tx.session.flush()
    tx.emit(events.TICKET_UPDATED, **ticket.to_event())


# -- reads ---------------------------------------------------------------------
# Reads are prebuilt Core statements returning plain rows (no ORM objects, SQLAlchemy
# compiles each statement once): the read RPCs run them on an autocommit connection,
# one round trip per read instead of BEGIN, SELECT, ROLLBACK.
_tickets = Ticket.__table__
_VIEW = (_tickets.c.id, _tickets.c.title, _tickets.c.price_cents, _tickets.c.user_id, _tickets.c.version,
         _tickets.c.order_id, _tickets.c.created_at)
_BY_ID = select(*_VIEW).where(_tickets.c.id == bindparam("ticket_id"))
_NEWEST_FIRST = (_tickets.c.created_at.desc(), _tickets.c.id.desc())
_FIRST_PAGE = (select(*_VIEW).where(_tickets.c.order_id.is_(None))
               .order_by(*_NEWEST_FIRST).limit(bindparam("limit")))
_NEXT_PAGE = (select(*_VIEW)
              .where(_tickets.c.order_id.is_(None),
                     or_(_tickets.c.created_at < bindparam("created"),
                         and_(_tickets.c.created_at == bindparam("created"), _tickets.c.id < bindparam("after"))))
              .order_by(*_NEWEST_FIRST).limit(bindparam("limit")))


def view(row) -> dict:
    """A ticket as the RPCs return it (the shape of ``Ticket.to_dict``), from a row of the reads above."""
    return {"id": row.id, "title": row.title, "price": f"{row.price_cents:.2f}", "userId": row.user_id,
            "version": row.version, "orderId": row.order_id}


def ticket_view(db, ticket_id: str) -> dict:
    """One ticket by id, any status; ``db`` is a Connection or a Session."""
    if not is_valid_id(ticket_id):
        raise NotFound("Ticket not found")
    row = db.execute(_BY_ID, {"ticket_id": ticket_id}).first()
    if row is None:
        raise NotFound("Ticket not found")
    return view(row)


def encode_cursor(row) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    from services.common.errors import BadRequest

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        created, ticket_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not is_valid_id(ticket_id):  # it goes into a query: nothing but an id (no NUL, no junk)
            raise ValueError("not an id")
        return datetime.fromisoformat(created), ticket_id
    except (ValueError, TypeError, RecursionError):
        raise BadRequest("Invalid cursor", field="cursor") from None


def page_on_sale(db, limit: int | None = None, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Tickets on sale, newest first (as ``view`` dicts); returns the page and the cursor of the next one."""
    limit = max(1, min(limit or DEFAULT_PAGE, MAX_PAGE))
    if cursor:
        created, ticket_id = decode_cursor(cursor)
        rows = db.execute(_NEXT_PAGE, {"created": created, "after": ticket_id, "limit": limit + 1}).all()
    else:
        rows = db.execute(_FIRST_PAGE, {"limit": limit + 1}).all()
    page = rows[:limit]
    return [view(row) for row in page], (encode_cursor(page[-1]) if len(rows) > limit else None)
