"""The orders service's tables: orders, a replica of tickets, its outbox and processed-event record."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common import events
from services.common.store import Money, OutboxRecord, ProcessedEventRecord, UTCDateTime, utcnow
from services.common.validation import new_id

CREATED = "created"
AWAITING_PAYMENT = "awaiting:payment"
COMPLETE = "complete"
CANCELLED = "cancelled"
STATUSES = (CREATED, AWAITING_PAYMENT, COMPLETE, CANCELLED)
#: an order in one of these holds its ticket; at most one per ticket (the partial unique index)
ACTIVE = (CREATED, AWAITING_PAYMENT, COMPLETE)

_ACTIVE_SQL = text("status IN ('created', 'awaiting:payment', 'complete')")


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxRecord, Base):
    pass


class ProcessedEvent(ProcessedEventRecord, Base):
    pass


class TicketReplica(Base):
    """What orders knows of a ticket, fed by ticket:created / ticket:updated (the newest version wins)."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column("price_cents", Money())
    #: the seller: nobody may buy their own ticket
    user_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "price": f"{self.price:.2f}"}


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # The database, not a read-then-write check, keeps a ticket to one active order.
        Index("uq_orders_one_active_per_ticket", "ticket_id", unique=True,
              postgresql_where=_ACTIVE_SQL, sqlite_where=_ACTIVE_SQL),
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(32))
    user_email: Mapped[str] = mapped_column(String(254))
    ticket_id: Mapped[str] = mapped_column(String(32), ForeignKey("tickets.id"))
    status: Mapped[str] = mapped_column(String(20))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the price of the ticket when it was reserved: what the buyer is shown and charged
    price: Mapped[Decimal | None] = mapped_column("price_cents", Money(), nullable=True)
    #: when the order last went to awaiting:payment (stale holds are released by a timer)
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the payments charge attempt that holds it: a repeat of that attempt's hold succeeds, and
    #: only that attempt's release lets go of it
    held_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    ticket: Mapped[TicketReplica] = relationship(lazy="joined", innerjoin=True)

    # Optimistic concurrency: every UPDATE is guarded by (and bumps) the version;
    # a concurrent change makes the flush fail instead of being overwritten.
    __mapper_args__ = {"version_id_col": version,
                       "version_id_generator": lambda current: 0 if current is None else current + 1}

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "userId": self.user_id,
            "expiresAt": events.isoformat(self.expires_at),
            "version": self.version,
            "ticket": self.ticket_summary(),
        }

    @property
    def reserved_price(self) -> Decimal:
        return self.price if self.price is not None else self.ticket.price

    def ticket_summary(self) -> dict:
        """The ticket as the buyer reserved it: its title now, the price it had then."""
        return {**self.ticket.summary(), "price": f"{self.reserved_price:.2f}"}
