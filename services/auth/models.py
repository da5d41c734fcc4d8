"""The auth service's tables: users, refresh tokens (hashed) and throttle counters."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.store import UTCDateTime, utcnow
from services.common.validation import new_id


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: set by an operator's revoke_user: no refresh, no sign-in
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email}


class RefreshToken(Base):
    """One refresh token; rotation makes a chain of them in one family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when it was exchanged for its successor; presenting it again is reuse
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ThrottleCounter(Base):
    """Attempts per key in the current window: ``email:…`` and ``client:…`` (sign-in attempts,
    counted before the password is checked), ``signup:…`` (sign-ups per client address).

    Updated only by one atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (see
    ``repository.count``), so concurrent attempts never race."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=0)
    #: per-email key: no attempt before this time (a delay that grows with each failure)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Revocation(Base):
    """A user revoked (``session_id`` None: every access token issued until ``not_before``) or one
    signed-out session (its access tokens). Gateways pull these to refuse such tokens within
    seconds rather than at their expiry."""

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    def to_dict(self) -> dict:
        return {"id": self.id, "userId": self.user_id, "sessionId": self.session_id,
                "notBefore": self.not_before.timestamp()}
