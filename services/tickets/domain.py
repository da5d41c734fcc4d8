"""Ticket rules, without a database: who may edit, what a reserved or sold ticket allows, which
order events change a ticket, how versions move, what a page cursor is.

The service layer (:mod:`services.tickets.service_layer`) loads and saves through
:mod:`services.tickets.repository` and asks these rules what to do.
"""
from __future__ import annotations

import base64
import json
import logging
from datetime import datetime

from services.common.errors import BadRequest, Conflict, Forbidden
from services.common.handlers import NotYetApplicable
from services.common.validation import TicketInput, is_valid_id, validate

from .models import Ticket

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
#: a cursor we issue is about 80 characters
MAX_CURSOR_LENGTH = 200
MAX_PAGE = 100


def new_ticket(user_id: str, title, price, request_id: str | None, now: datetime) -> Ticket:
    """A ticket on sale (400 for a bad title or price)."""
    data = validate(TicketInput, {"title": title, "price": price})
    return Ticket(title=data.title, price=data.price, user_id=user_id, version=0, created_at=now,
                  request_id=request_id)


def repeated(existing: Ticket, user_id: str) -> Ticket:
    """The ticket a request id already listed: the same user's redelivered request gets it back;
    another user's is a 409 (the gateway scopes keys per user; a caller that does not must not
    collide into a 500)."""
    if existing.user_id != user_id:
        raise Conflict("This request id was already used", field="requestId")
    return existing


def edit(ticket: Ticket, user_id: str, title, price) -> None:
    """The seller's new title and price: 403 for someone else, 409 while reserved, 400 if invalid."""
    if ticket.user_id != user_id:
        raise Forbidden("You do not own this ticket")
    if ticket.order_id is not None:
        raise Conflict("Cannot edit a reserved ticket")
    data = validate(TicketInput, {"title": title, "price": price})
    ticket.title, ticket.price = data.title, data.price


def reserve(ticket: Ticket, order_id: str, cancelled: bool) -> bool:
    """order:created — the ticket is held by that order (and off sale). True if it changed.

    Order events may arrive in any order. An order already cancelled (``cancelled``: its
    order:cancelled came first) reserves nothing. A ticket still held by another order waits
    (retried later): orders allows one active order per ticket, so that other order's
    order:cancelled is on its way."""
    if ticket.order_id == order_id:
        return False
    if cancelled:
        log.info("order:created of %s after its order:cancelled: ticket %s stays as it is", order_id, ticket.id)
        return False
    if ticket.sold_at is not None:
        log.warning("order:created of %s for ticket %s, already sold to order %s: ignored",
                    order_id, ticket.id, ticket.order_id)
        return False
    if ticket.order_id is not None:
        raise NotYetApplicable(f"ticket {ticket.id} is held by order {ticket.order_id}; waiting for its "
                               f"order:cancelled before reserving it for {order_id}")
    ticket.order_id = order_id
    return True


def release(ticket: Ticket, cancelled: dict[str, str]) -> str | None:
    """order:cancelled — back on sale if one of the ``cancelled`` orders (``{order id: ticket id}``)
    holds it (not another one, and not sold). The order that let go of it, or None."""
    order_id = ticket.order_id
    if order_id is None or cancelled.get(order_id) != ticket.id or ticket.sold_at is not None:
        return None
    ticket.order_id = None
    return order_id


def sell(ticket: Ticket, order_id: str, now: datetime) -> bool:
    """order:completed — off sale for good. True if the holder changed (then it is announced)."""
    if ticket.sold_at is not None:
        return False
    ticket.sold_at = now
    if ticket.order_id == order_id:
        return False
    ticket.order_id = order_id
    return True


def bump(ticket: Ticket) -> None:
    """Every change a buyer or seller can see raises the version (announced in ticket:updated)."""
    ticket.version += 1


# -- reads ---------------------------------------------------------------------

def view(row) -> dict:
    """A ticket as the RPCs return it (the shape of ``Ticket.to_dict``), from a row of the repository's reads."""
    return {"id": row.id, "title": row.title, "price": f"{row.price_cents:.2f}", "userId": row.user_id,
            "version": row.version, "orderId": row.order_id}


def page_size(limit: int | None) -> int:
    return max(1, min(limit or DEFAULT_PAGE, MAX_PAGE))


def encode_cursor(row) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
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
