"""The payments service's tables: payments and charge attempts, plus its outbox and processed-event record."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.events import isoformat
from services.common.store import OutboxRecord, ProcessedEventRecord, UTCDateTime, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxRecord, Base):
    __tablename__ = "outbox"


class ProcessedEvent(ProcessedEventRecord, Base):
    __tablename__ = "processed_events"


class Payment(Base):
    """A successful charge of one order. One per order, enforced by the database."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    charge_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    processor: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def to_dict(self) -> dict:
        return {"id": self.id, "orderId": self.order_id, "chargeId": self.charge_id,
                "amountCents": self.amount_cents, "currency": self.currency, "processor": self.processor,
                "createdAt": isoformat(self.created_at)}


class ChargeAttempt(Base):
    """One request to the processor, written *before* it is sent.

    Its idempotency key (``order-<order id>-<number>``) is what makes a retry
    safe: a request repeated with the same key and the same parameters is
    answered by the processor with the first result instead of a second charge
    (so the attempt keeps everything it was sent with, description included).
    States:

    * ``pending``: sent (or about to be), outcome unknown. The order stays held
      (``awaiting:payment``) and the reconciliation timer replays the attempt
      with its own key until the processor answers;
    * ``succeeded`` / ``declined``: the processor's answer, recorded;
    * ``failed``: the processor refused the request before executing it
      (bad key, invalid request): no money moved, the hold was released;
    * ``abandoned``: still unknown at the give-up age; money may have moved, so
      the order stays held and an operator is paged (CRITICAL log).

    A new attempt (new key) is opened only after the previous one was settled
    as declined or failed, so another card can be tried after a decline.
    """

    __tablename__ = "charge_attempts"
    __table_args__ = (UniqueConstraint("order_id", "number", name="uq_charge_attempts_order_number"),
                      Index("ix_charge_attempts_state_created_at", "state", "created_at"))

    PENDING, SUCCEEDED, DECLINED, FAILED, ABANDONED = "pending", "succeeded", "declined", "failed", "abandoned"
    #: settled without moving money: a new attempt may follow
    RETRYABLE = (DECLINED, FAILED)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    token: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def to_dict(self) -> dict:
        return {"id": self.id, "orderId": self.order_id, "number": self.number,
                "idempotencyKey": self.idempotency_key, "amountCents": self.amount_cents,
                "currency": self.currency, "state": self.state, "chargeId": self.charge_id,
                "message": self.message, "createdAt": isoformat(self.created_at),
                "settledAt": isoformat(self.settled_at) if self.settled_at else None}
