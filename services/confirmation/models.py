"""The confirmation service's table: the sent-email log (it publishes no event, and an order's email is
sent once by its order id, so it has no outbox and no processed-event record)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.events import isoformat
from services.common.store import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class SentEmail(Base):
    """The confirmation email of one order (the order id is the key: one email per order).

    The whole email is kept, so an operator can send it again. ``state`` is
    ``pending`` until the provider accepted it, then ``sent``; a lease
    (``lease_token`` until ``lease_until``) lets one worker at a time send it.
    """

    __tablename__ = "sent_emails"

    PENDING, SENT = "pending", "sent"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    to_email: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    #: send attempts made (failed or not), and sends the provider accepted (resends included)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def to_dict(self) -> dict:
        return {
            "orderId": self.order_id, "to": self.to_email, "subject": self.subject, "state": self.state,
            "attempts": self.attempts, "sends": self.sends, "provider": self.provider,
            "providerMessageId": self.provider_message_id, "lastError": self.last_error,
            "createdAt": isoformat(self.created_at), "sentAt": isoformat(self.sent_at) if self.sent_at else None,
        }
