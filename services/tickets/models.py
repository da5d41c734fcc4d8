"""The tickets service's tables: tickets, the cancellations it has seen, and its outbox."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.store import Money, OutboxRecord, UTCDateTime, utcnow
from services.common.validation import new_id


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxRecord, Base):
    pass


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_on_sale", "order_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    #: stored as integer cents
    price: Mapped[Decimal] = mapped_column("price_cents", Money())
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    #: the order that holds the ticket (reserved or sold); None when on sale
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: set when that order completed: the ticket is off sale for good
    sold_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: the id of the request that listed it: a redelivered create (after a crash) finds it again
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "price": f"{self.price:.2f}",
            "userId": self.user_id,
            "version": self.version,
            "orderId": self.order_id,
        }

    def to_event(self) -> dict:
        return {"id": self.id, "version": self.version, "title": self.title, "price": self.price,
                "userId": self.user_id, "orderId": self.order_id}


class CancelledOrder(Base):
    """An order whose order:cancelled was applied: its order:created, should it come later, reserves nothing."""

    __tablename__ = "cancelled_orders"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(32))
    cancelled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
