"""The confirmation service's queries: the sent-email log (SQLAlchemy).

Each function takes the session of the caller's transaction; the service layer owns it. The
lease is taken and given back with conditional UPDATEs (``WHERE lease_token = …``), so of two
workers only one holds it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, or_, select, update

from services.common.store import Store

from .models import SentEmail


def record(session, row: SentEmail) -> None:
    """Keep the email of an order (the first one wins; a redelivery, or a concurrent delivery,
    changes nothing): ``INSERT … ON CONFLICT DO NOTHING`` (:meth:`Store.upsert`)."""
    Store.upsert(session, SentEmail.__table__, {attribute.columns[0].key: getattr(row, attribute.key)
                                                for attribute in inspect(SentEmail).column_attrs})

def find(session, order_id: str) -> SentEmail | None:
    return session.get(SentEmail, order_id)


def state_of(session, order_id: str) -> str | None:
    return session.scalar(select(SentEmail.state).where(SentEmail.order_id == order_id))


def take_lease(session, order_id: str, token: str, now: datetime, until: datetime, *, unsent_only: bool) -> bool:
    """Lease the email of ``order_id`` with ``token`` until ``until`` (one more attempt); False if it
    is leased by someone else (or, ``unsent_only``, sent)."""
    query = (update(SentEmail)
             .where(SentEmail.order_id == order_id,
                    or_(SentEmail.lease_until.is_(None), SentEmail.lease_until < now))
             .values(lease_token=token, lease_until=until, attempts=SentEmail.attempts + 1)
             .execution_options(synchronize_session=False))
    if unsent_only:
        query = query.where(SentEmail.state == SentEmail.PENDING)
    return session.execute(query).rowcount == 1


def mark_sent(session, order_id: str, lease: str, provider: str, message_id: str, now: datetime) -> None:
    session.execute(
        update(SentEmail).where(SentEmail.order_id == order_id, SentEmail.lease_token == lease)
        .values(state=SentEmail.SENT, sends=SentEmail.sends + 1, sent_at=now, provider=provider,
                provider_message_id=message_id[:500], last_error=None, lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False))


def give_back(session, order_id: str, lease: str, error: str) -> None:
    session.execute(
        update(SentEmail).where(SentEmail.order_id == order_id, SentEmail.lease_token == lease)
        .values(last_error=error[:2000], lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False))


def unsent(session, limit: int) -> list[SentEmail]:
    """Emails not sent yet, oldest first."""
    return session.scalars(select(SentEmail).where(SentEmail.state == SentEmail.PENDING)
                           .order_by(SentEmail.created_at).limit(limit)).all()
