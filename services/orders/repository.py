"""The orders service's queries: loading and saving orders and the ticket replica (SQLAlchemy).

Each function takes the session of the caller's transaction; the service layer owns it.
Database errors that mean something to a buyer become the project's errors here (a second
active order for a ticket, an order changed by someone else meanwhile).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from services.common.errors import Conflict, NotFound
from services.common.store import Store
from services.common.validation import is_valid_id

from .domain import CHANGED_MEANWHILE, Transition
from .models import AWAITING_PAYMENT, CREATED, STATUSES, Order, TicketReplica


def find(session, order_id: str, *, lock: bool = False) -> Order:
    """One order with its ticket, or 404; ``lock`` holds it until the transaction ends, so that
    changes of one order happen one after the other (:meth:`Store.lock_rows`)."""
    if not is_valid_id(order_id):
        raise NotFound("Order not found")
    query = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    order = session.scalars(Store.lock_rows(query) if lock else query).first()
    if order is None:
        raise NotFound("Order not found")
    return order


def insert(session, row: Order | TicketReplica) -> bool:
    """Insert a new order or replica; False if the database refuses it as a duplicate: another
    active order holds the order's ticket (the partial unique index, however close the race), or a
    concurrent delivery of the same ticket:created got there first."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        return False
    return True


def save(session) -> None:
    """Write the changes of the session's orders: ``UPDATE ... WHERE version = :old`` (the version
    goes up by one); 409 if another transaction changed one of them meanwhile."""
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(CHANGED_MEANWHILE) from None


def move_all_if_due(session, order_ids: list[str], transition: Transition, due_by: datetime) -> list:
    """Apply ``transition`` to the orders in its source status whose expiresAt is at or before
    ``due_by``, in one conditional UPDATE (no read first: the hot path when many orders expire
    at once). The (id, version, ticket_id) of each order it changed."""
    return session.execute(
        update(Order).where(Order.id.in_(order_ids), Order.status == transition.source, Order.expires_at <= due_by)
        .values(status=transition.target, version=Order.version + 1)
        .returning(Order.id, Order.version, Order.ticket_id)
        .execution_options(synchronize_session=False)
    ).all()


def orders_of(session, user_id: str) -> list[Order]:
    """The user's orders, oldest first."""
    query = select(Order).where(Order.user_id == user_id).order_by(Order.created_at, Order.id)
    return list(session.scalars(query).unique())


def search(session, user_id: str | None, status: str | None, limit: int) -> list[Order]:
    """The newest ``limit`` orders, of one user and/or in one status."""
    query = select(Order).order_by(Order.created_at.desc(), Order.id).limit(limit)
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


def overdue_ids(session, cutoff: datetime, limit: int = 500) -> list[str]:
    """created orders whose expiresAt is before ``cutoff``, the most overdue first."""
    query = (select(Order.id).where(Order.status == CREATED, Order.expires_at < cutoff)
             .order_by(Order.expires_at).limit(limit))
    return list(session.scalars(query))


def stale_hold_ids(session, cutoff: datetime, limit: int = 500) -> list[str]:
    """awaiting:payment orders held since before ``cutoff``, the oldest hold first."""
    query = (select(Order.id).where(Order.status == AWAITING_PAYMENT, Order.held_at < cutoff)
             .order_by(Order.held_at).limit(limit))
    return list(session.scalars(query))


# -- the ticket replica ----------------------------------------------------------

def replica_states(session, ticket_ids) -> dict:
    """{ticket id: (id, version, title, price, user_id)} of the replicas of ``ticket_ids`` that exist."""
    return {row.id: row for row in session.execute(
        select(TicketReplica.id, TicketReplica.version, TicketReplica.title, TicketReplica.price,
               TicketReplica.user_id).where(TicketReplica.id.in_(set(ticket_ids))))}


def ticket(session, ticket_id: str) -> TicketReplica | None:
    return session.get(TicketReplica, ticket_id)
