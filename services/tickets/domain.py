"""Ticket rules: who may edit, what a reserved ticket allows, how versions move, paging."""
from __future__ import annotations

import base64
import json
import logging
from datetime import datetime

from sqlalchemy import and_, or_, select

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.common.validation import Input, Money, Title, is_valid_id, validate

from .models import CancelledOrder, Ticket

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 100


class TicketInput(Input):
    title: Title
    price: Money


def find(session, ticket_id: str, *, for_update: bool = False) -> Ticket:
    if not is_valid_id(ticket_id):
        raise NotFound("Ticket not found")
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update()
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
        if existing is not None and existing.user_id == user_id:
            return existing
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
    if tx.session.get(CancelledOrder, order_id) is None:
        tx.session.add(CancelledOrder(order_id=order_id, ticket_id=ticket_id, cancelled_at=events.utcnow()))
    ticket = find(tx.session, ticket_id, for_update=True)
    if ticket.order_id != order_id or ticket.sold_at is not None:
        return
    ticket.order_id = None
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


def encode_cursor(ticket: Ticket) -> str:
    raw = json.dumps([ticket.created_at.isoformat(), ticket.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    from services.common.errors import BadRequest

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ticket_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), str(ticket_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise BadRequest("Invalid cursor", field="cursor") from None


def page_on_sale(session, limit: int | None = None, cursor: str | None = None) -> tuple[list[Ticket], str | None]:
    """Tickets on sale, newest first; returns the page and the cursor of the next one."""
    limit = max(1, min(limit or DEFAULT_PAGE, MAX_PAGE))
    query = select(Ticket).where(Ticket.order_id.is_(None))
    if cursor:
        created, ticket_id = decode_cursor(cursor)
        query = query.where(or_(Ticket.created_at < created,
                                and_(Ticket.created_at == created, Ticket.id < ticket_id)))
    rows = session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return page, (encode_cursor(page[-1]) if len(rows) > limit else None)
