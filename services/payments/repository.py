"""The payments service's queries: charge attempts and payments, read and written in a caller's session.

A charge attempt's state changes only here, and only by a move of the
lifecycle table (:class:`~services.payments.domain.Transition`): :func:`add`
writes a new attempt, :func:`move` changes one with a conditional UPDATE
(``WHERE state = <the move's origin>``), so of two writers that race for one
attempt only the first moves it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from services.common.store import Store

from .domain import CURRENCY, RETRYABLE, UNSETTLED, State, Transition
from .models import CancelledOrder, ChargeAttempt, Payment, Refund


def _values(states) -> list[str]:
    return [state.value for state in states]


def add(tx, *, order_id: str, number: int, idempotency_key: str, token: str, request: str | None,
         now: datetime) -> ChargeAttempt:
    """A new attempt (:attr:`Transition.OPEN`); the caller flushes it (a unique number per order)."""
    attempt = ChargeAttempt(order_id=order_id, number=number, idempotency_key=idempotency_key, token=token,
                            currency=CURRENCY, state=Transition.OPEN.check(None).value, request_id=request,
                            created_at=now)
    tx.session.add(attempt)
    return attempt


def move(tx, attempt_id: str, transition: Transition, **values) -> bool:
    """Move the attempt by ``transition`` (setting ``values`` too); False if it is not where the move
    starts (another writer moved it first)."""
    result = tx.session.execute(
        update(ChargeAttempt)
        .where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == transition.source.value)
        .values(state=transition.target.value, **values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def mark_released(tx, attempt_id: str, now: datetime) -> None:
    """The hold of this attempt was let go of (not a move: the attempt keeps its state)."""
    tx.session.execute(update(ChargeAttempt).where(ChargeAttempt.id == attempt_id)
                       .values(released_at=now).execution_options(synchronize_session=False))


def latest_locked(session, order_id: str) -> ChargeAttempt | None:
    """The order's last attempt, locked until the transaction ends (a reconciler recording this
    order's outcome is waited for)."""
    query = (select(ChargeAttempt).where(ChargeAttempt.order_id == order_id)
             .order_by(ChargeAttempt.number.desc()).limit(1).execution_options(populate_existing=True))
    return session.scalars(Store.lock_rows(query)).first()


def by_request(session, order_id: str, request: str) -> ChargeAttempt | None:
    """The last attempt of the payer's request ``request`` for this order."""
    return session.scalars(
        select(ChargeAttempt).where(ChargeAttempt.order_id == order_id, ChargeAttempt.request_id == request)
        .order_by(ChargeAttempt.number.desc()).limit(1)).first()


def pending(attempt_id: str):
    """The query of the attempt while it is pending (for :meth:`StoreApi.claim`)."""
    return (select(ChargeAttempt).where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == State.PENDING.value)
            .execution_options(populate_existing=True))


def pending_ids(session, cutoff: datetime, limit: int = 100) -> list[str]:
    """Pending attempts created at or before ``cutoff``, oldest first."""
    query = (select(ChargeAttempt.id).where(ChargeAttempt.state == State.PENDING.value,
                                            ChargeAttempt.created_at <= cutoff)
             .order_by(ChargeAttempt.created_at).limit(limit))
    return list(session.scalars(query))


def holding_ids(session, cutoff: datetime, limit: int = 100) -> list[str]:
    """Attempts still holding that were created at or before ``cutoff``."""
    return list(session.scalars(select(ChargeAttempt.id).where(
        ChargeAttempt.state == State.HOLDING.value, ChargeAttempt.created_at <= cutoff).limit(limit)))


def unreleased(session, limit: int = 100) -> list[tuple[str, str]]:
    """(attempt id, order id) of attempts that moved no money and whose hold was not let go of yet."""
    return [tuple(row) for row in session.execute(select(ChargeAttempt.id, ChargeAttempt.order_id).where(
        ChargeAttempt.state.in_(_values(RETRYABLE)), ChargeAttempt.released_at.is_(None)).limit(limit)).all()]


def has_unsettled(session, order_id: str) -> bool:
    """Has this order an attempt that may have moved money (or may still)?"""
    return session.scalars(
        select(ChargeAttempt.id).where(ChargeAttempt.order_id == order_id,
                                       ChargeAttempt.state.in_(_values(UNSETTLED))).limit(1)
    ).first() is not None


def unknown_outcomes(session, limit: int = 500) -> list[ChargeAttempt]:
    """Attempts whose outcome is not known (pending, or abandoned), oldest first."""
    return list(session.scalars(
        select(ChargeAttempt).where(ChargeAttempt.state.in_(_values((State.PENDING, State.ABANDONED))))
        .order_by(ChargeAttempt.created_at).limit(limit)))


def find_payment(session, order_id: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.order_id == order_id)).first()


def find_refund(session, order_id: str) -> Refund | None:
    return session.scalars(select(Refund).where(Refund.order_id == order_id)).first()


def owed_refunds(session, limit: int = 100) -> list[str]:
    """Orders that were cancelled although paid, and not refunded yet."""
    return list(session.scalars(
        select(Payment.order_id).join(CancelledOrder, CancelledOrder.order_id == Payment.order_id)
        .outerjoin(Refund, Refund.payment_id == Payment.id).where(Refund.id.is_(None)).limit(limit)))


def note_cancelled(tx, order_ids: list[str], now: datetime) -> None:
    """Remember cancelled orders once, all in one ``INSERT … ON CONFLICT DO NOTHING``, so a
    redelivery, or a duplicate handled at the same time by another worker, changes nothing."""
    Store.upsert(tx.session, CancelledOrder.__table__,
                 [{"order_id": order_id, "cancelled_at": now} for order_id in dict.fromkeys(order_ids)])
