"""The tickets service's queries: loading and saving tickets and the record of cancelled orders (SQLAlchemy).

Writes take the session of the caller's transaction; the service layer owns it. Reads
(:func:`ticket_row`, :func:`page_rows`) are prebuilt Core statements returning plain rows
(no ORM objects, SQLAlchemy compiles each statement once) that run on whatever they are given,
a Session or the autocommit Connection the read RPCs use.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select

from services.common.errors import NotFound
from services.common.store import Store
from services.common.validation import is_valid_id

from .models import CancelledOrder, Ticket


def find(session, ticket_id: str, *, lock: bool = False) -> Ticket:
    """One ticket, or 404; ``lock`` holds it until the transaction ends (:meth:`Store.lock_rows`)."""
    if not is_valid_id(ticket_id):
        raise NotFound("Ticket not found")
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = Store.lock_rows(query)
    ticket = session.scalars(query).first()
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket


def lock_all(session, ticket_ids) -> list[Ticket]:
    """The tickets of ``ticket_ids`` that exist, locked in id order (two batches never wait on each
    other in a circle)."""
    ids = sorted({ticket_id for ticket_id in ticket_ids if is_valid_id(ticket_id)})
    return session.scalars(Store.lock_rows(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id))).all()


def by_request(session, request_id: str) -> Ticket | None:
    """The ticket listed by request ``request_id``, if any."""
    return session.scalars(select(Ticket).where(Ticket.request_id == request_id)).first()


def insert(session, ticket: Ticket) -> None:
    session.add(ticket)
    session.flush()


def is_cancelled(session, order_id: str) -> bool:
    """Whether order:cancelled of ``order_id`` was applied here."""
    return session.get(CancelledOrder, order_id) is not None


def record_cancellations(session, cancelled: dict[str, str], now: datetime) -> None:
    """Record the cancelled orders ``{order id: ticket id}`` not recorded yet."""
    known = set(session.scalars(select(CancelledOrder.order_id).where(CancelledOrder.order_id.in_(cancelled))))
    session.add_all([CancelledOrder(order_id=order_id, ticket_id=ticket_id, cancelled_at=now)
                     for order_id, ticket_id in cancelled.items() if order_id not in known])


# -- reads ---------------------------------------------------------------------
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


def ticket_row(db, ticket_id: str):
    """One ticket's row by id, any status, or None; ``db`` is a Connection or a Session."""
    return db.execute(_BY_ID, {"ticket_id": ticket_id}).first()


def page_rows(db, limit: int, after: tuple[datetime, str] | None = None) -> list:
    """Up to ``limit`` rows of tickets on sale, newest first, from the start or after
    ``(created_at, id)`` of the last row of the previous page."""
    if after is None:
        return db.execute(_FIRST_PAGE, {"limit": limit}).all()
    created, ticket_id = after
    return db.execute(_NEXT_PAGE, {"created": created, "after": ticket_id, "limit": limit}).all()
