"""The auth service's queries: users, refresh tokens, throttle counters and revocations (SQLAlchemy).

Each function takes the session of the caller's transaction; the service layer owns it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, literal, null, select, update
from sqlalchemy.exc import IntegrityError

from services.common.store import Store, UTCDateTime

from .models import RefreshToken, Revocation, ThrottleCounter, User


def user(session, user_id: str) -> User | None:
    return session.get(User, user_id)


def user_by_email(session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email)).first()


def add_user(session, new: User) -> bool:
    """Insert a new user; False if a concurrent sign-up with the same email got there first
    (the session is rolled back then)."""
    session.add(new)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


def add(session, row: RefreshToken | Revocation) -> None:
    session.add(row)


# -- throttle counters -------------------------------------------------------------

def count(session, key: str, now: datetime, window: timedelta) -> tuple[int, object]:
    """Add one to ``key``'s counter in its window, atomically; returns (count, blocked_until).

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (:meth:`Store.upsert`), so two
    simultaneous first attempts both count instead of one failing on the primary key. A window
    that has passed (started at or before ``now - window``) starts again at 1."""
    table = ThrottleCounter.__table__
    at = literal(now, UTCDateTime())
    stale = table.c.window_started_at <= literal(now - window, UTCDateTime())
    counted, blocked_until = Store.upsert(
        session, table, {"key": key, "window_started_at": now, "count": 1, "blocked_until": None},
        index_elements=[table.c.key], set_={
            "count": case((stale, 1), else_=table.c.count + 1),
            "window_started_at": case((stale, at), else_=table.c.window_started_at),
            "blocked_until": case((stale, null()), else_=table.c.blocked_until),
        }, returning=[table.c.count, table.c.blocked_until]).one()
    return counted, blocked_until


def block(session, key: str, until: datetime) -> None:
    session.execute(update(ThrottleCounter).where(ThrottleCounter.key == key).values(blocked_until=until))


def forget(session, key: str) -> None:
    session.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))


def uncount(session, key: str) -> None:
    """Take one attempt back from ``key``'s counter (never below 0)."""
    session.execute(update(ThrottleCounter).where(ThrottleCounter.key == key, ThrottleCounter.count > 0)
                    .values(count=ThrottleCounter.count - 1))


# -- refresh tokens and revocations ----------------------------------------------

def token(session, token_hash: str, *, lock: bool = False) -> RefreshToken | None:
    """The refresh token with this hash; ``lock``: held until the transaction ends (rotation)."""
    query = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    return session.scalars(Store.lock_rows(query) if lock else query).first()


def revoke_family(session, family_id: str, now: datetime) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                               RefreshToken.revoked_at.is_(None)).values(revoked_at=now))


def revoke_tokens_of(session, user_id: str, now: datetime) -> int:
    """Revoke every live refresh token of a user; how many."""
    return session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                                      RefreshToken.revoked_at.is_(None))
                           .values(revoked_at=now)).rowcount


def revocations(session, after: int, horizon: datetime, limit: int) -> list[Revocation]:
    """Revocations with an id above ``after`` created since ``horizon``, oldest first."""
    return session.scalars(select(Revocation).where(Revocation.id > after, Revocation.created_at >= horizon)
                           .order_by(Revocation.id).limit(limit)).all()


def last_revocation_id(session) -> int:
    return session.scalar(select(func.max(Revocation.id))) or 0
