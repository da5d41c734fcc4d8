"""The payments service's tables: payments and charge attempts, plus its outbox and processed-event record."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.events import isoformat
from services.common.store import OutboxRecord, UTCDateTime, utcnow
from services.common.validation import new_id


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxRecord, Base):
    pass


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
    It is written *before* payments asks orders to hold the order, and the hold
    records the attempt's id (the holder), so every hold has an attempt that
    answers for it. Its ``state`` is one of
    :class:`~services.payments.domain.State` and changes only by a move of the
    lifecycle table, :class:`~services.payments.domain.Transition`:

    * ``holding``: the hold was asked for, nothing sent yet. If the payer dies
      here, the attempt is ``dropped`` after ``PAYMENTS_HOLD_GRACE`` seconds and
      its hold released (a redelivered request of the same payer continues it
      instead: orders gives the same holder its hold again);
    * ``pending``: sent (or about to be), outcome unknown. The order stays held
      (``awaiting:payment``) and the reconciliation timer replays the attempt
      with its own key until the processor answers;
    * ``succeeded`` / ``declined``: the processor's answer, recorded;
    * ``failed``: orders refused the hold, or the processor refused the request
      before executing it (bad key, invalid request): no money moved;
    * ``abandoned``: still unknown at the give-up age; money may have moved, so
      the order stays held and an operator is paged (CRITICAL log);
    * ``dropped``: its payer died (or lost orders) before sending anything.

    ``released_at``: when the hold of an attempt that moved no money (declined,
    failed, dropped) was let go; until then the hold sweep keeps releasing it.
    ``request_id``: the payer's request (the gateway's, or the client's
    Idempotency-Key): the same request again gets the first outcome.

    A new attempt (new key) is opened only after the previous one was settled
    as declined, failed or dropped, so another card can be tried after a decline.
    """

    __tablename__ = "charge_attempts"
    __table_args__ = (UniqueConstraint("order_id", "number", name="uq_charge_attempts_order_number"),
                      Index("ix_charge_attempts_state_created_at", "state", "created_at"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    token: Mapped[str] = mapped_column(String(255))
    #: the price the order was reserved at; known once the hold is taken
    amount_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def to_dict(self) -> dict:
        return {"id": self.id, "orderId": self.order_id, "number": self.number,
                "idempotencyKey": self.idempotency_key, "amountCents": self.amount_cents,
                "currency": self.currency, "state": self.state, "chargeId": self.charge_id,
                "message": self.message, "createdAt": isoformat(self.created_at),
                "settledAt": isoformat(self.settled_at) if self.settled_at else None}


class CancelledOrder(Base):
    """An order that orders cancelled (from order:cancelled): a payment of it is refunded."""

    __tablename__ = "cancelled_orders"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cancelled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Refund(Base):
    """Money given back: a payment of a cancelled order, or an operator's refund. One per payment."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    payment_id: Mapped[str] = mapped_column(String(32), unique=True)
    charge_id: Mapped[str] = mapped_column(String(255))
    refund_id: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def to_dict(self) -> dict:
        return {"id": self.id, "orderId": self.order_id, "paymentId": self.payment_id, "chargeId": self.charge_id,
                "refundId": self.refund_id, "amountCents": self.amount_cents, "reason": self.reason,
                "createdAt": isoformat(self.created_at)}
