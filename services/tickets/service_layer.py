"""The tickets service layer: each use of a ticket in one transaction.

:mod:`services.tickets.service` parses a request and calls one function here; the function
opens the transaction (``store``: the service's :class:`~services.common.store.Store`), loads
through :mod:`~services.tickets.repository`, asks :mod:`~services.tickets.domain` what the
rules say, saves, and emits the ticket's event in the same transaction (:func:`_changed`).
Event handlers get their transaction from the batch handler (``tx``). Reads run on an
autocommit connection (:func:`reader`): one statement, no BEGIN and no ROLLBACK.
"""
from __future__ import annotations

import weakref
from contextlib import nullcontext

from services.common import events
from services.common.errors import NotFound
from services.common.validation import is_valid_id

from . import domain, repository
from .models import Ticket

_readers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def reader(engine):
    """The service's engine outside transactions (autocommit; same pool): a one-statement read
    needs no BEGIN and no ROLLBACK, two round trips of three."""
    found = _readers.get(engine)
    if found is None:
        found = _readers[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


def _changed(tx, ticket: Ticket) -> None:
    """A change a buyer or seller can see: the version goes up and ticket:updated goes out with it.

    Nothing is flushed here: the session writes every changed ticket and outbox row at the next
    query or at commit, so a batch that changes many tickets (:func:`release_all`) sends its
    UPDATEs and INSERTs together instead of two round trips per ticket."""
    domain.bump(ticket)
    tx.emit(events.TICKET_UPDATED, **ticket.to_event())


# -- the seller ----------------------------------------------------------------------

def create(store, user_id: str, title, price, request_id: str | None = None) -> dict:
    with store.transaction() as tx:
        return list_ticket(tx, user_id, title, price, request_id).to_dict()


def update(store, user_id: str, ticket_id: str, title, price) -> dict:
    with store.transaction() as tx:
        return edit_ticket(tx, ticket_id, user_id, title, price).to_dict()


def list_ticket(tx, user_id: str, title, price, request_id: str | None = None) -> Ticket:
    """Put a ticket on sale (ticket:created). ``request_id`` makes it idempotent: RabbitMQ redelivers
    an RPC whose worker died, and the second delivery must return the first ticket, not list another."""
    ticket = domain.new_ticket(user_id, title, price, request_id, events.utcnow())
    if request_id:
        existing = repository.by_request(tx.session, request_id)
        if existing is not None:
            return domain.repeated(existing, user_id)
    repository.insert(tx.session, ticket)
    tx.emit(events.TICKET_CREATED, **ticket.to_event())
    return ticket


def edit_ticket(tx, ticket_id: str, user_id: str, title, price) -> Ticket:
    ticket = repository.find(tx.session, ticket_id, lock=True)
    domain.edit(ticket, user_id, title, price)
    _changed(tx, ticket)
    return ticket


# -- order events ----------------------------------------------------------------------

def reserve(tx, ticket_id: str, order_id: str) -> None:
    """order:created — the ticket is held by that order (:func:`domain.reserve`)."""
    ticket = repository.find(tx.session, ticket_id, lock=True)
    # a redelivery (the order holds it already) needs no look-up of the cancellations
    cancelled = ticket.order_id != order_id and repository.is_cancelled(tx.session, order_id)
    if domain.reserve(ticket, order_id, cancelled):
        _changed(tx, ticket)


def release_cancelled(store, cancelled: list[tuple[str, str]], announcing=None) -> None:
    """A batch of order:cancelled, (ticket id, order id) pairs: their tickets released in one transaction."""
    with store.transaction() as tx:
        release_all(tx, cancelled, announcing)


def release_all(tx, cancelled: list[tuple[str, str]], announcing=None) -> None:
    """order:cancelled for (ticket id, order id) pairs: each ticket back on sale if that order holds it
    (not another one, and not sold), in a few statements for all of them.

    Every cancellation is recorded (so that a late order:created reserves nothing); the tickets
    are locked in id order. ``announcing(order_id)``: a context manager around the emit of the
    ticket:updated that order's cancellation causes."""
    pairs = dict((order_id, ticket_id) for ticket_id, order_id in cancelled)
    repository.record_cancellations(tx.session, pairs, events.utcnow())
    tickets = repository.lock_all(tx.session, pairs.values())
    if len(tickets) < len(set(pairs.values())):
        raise NotFound("Ticket not found")
    for ticket in tickets:
        order_id = domain.release(ticket, pairs)
        if order_id is not None:
            with announcing(order_id) if announcing else nullcontext():
                _changed(tx, ticket)


def mark_sold(tx, ticket_id: str, order_id: str) -> None:
    """order:completed — off sale for good."""
    ticket = repository.find(tx.session, ticket_id, lock=True)
    if domain.sell(ticket, order_id, events.utcnow()):
        _changed(tx, ticket)


# -- reads (the gateway and operators) ----------------------------------------------------

def get(store, ticket_id: str) -> dict:
    with reader(store.engine).connect() as conn:
        return ticket_view(conn, ticket_id)


def on_sale(store, limit: int | None = None, cursor: str | None = None) -> dict:
    with reader(store.engine).connect() as conn:
        page, next_cursor = page_on_sale(conn, limit, cursor)
        return {"tickets": page, "next": next_cursor}


def ticket_view(db, ticket_id: str) -> dict:
    """One ticket by id, any status; ``db`` is a Connection or a Session."""
    if not is_valid_id(ticket_id):
        raise NotFound("Ticket not found")
    row = repository.ticket_row(db, ticket_id)
    if row is None:
        raise NotFound("Ticket not found")
    return domain.view(row)


def page_on_sale(db, limit: int | None = None, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Tickets on sale, newest first (as ``view`` dicts); returns the page and the cursor of the next one."""
    limit = domain.page_size(limit)
    rows = repository.page_rows(db, limit + 1, domain.decode_cursor(cursor) if cursor else None)
    page = rows[:limit]
    return [domain.view(row) for row in page], (domain.encode_cursor(page[-1]) if len(rows) > limit else None)
