"""Payment rules: hold the order, charge it at most once, record the outcome, let go on a decline.

The orders service is the authority on an order's status. Before any money
moves it holds the order (``created`` -> ``awaiting:payment``); the hold makes
concurrent payments of one order and a racing expiry lose with a 409 instead
of charging. Then:

* every charge is an attempt row written first, with an idempotency key
  derived from the order, so a repeat never charges twice;
* success: the payment row and ``payment:created`` are committed together
  (the outbox), and orders completes the order;
* declined: the attempt is closed, the hold released (the order goes back to
  ``created``, or ``cancelled`` if its time ran out meanwhile) and 402 raised;
* unknown outcome (processor down): the attempt stays ``pending``, the hold is
  released and 503 raised; the next payment of the order first replays that
  attempt with its own key, so money that did move is found, not charged again.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from services.common import events
from services.common.errors import BadRequest, Conflict, NotFound, PaymentDeclined, ServiceUnavailable
from services.common.validation import is_valid_id

from .models import ChargeAttempt, Payment
from .processors import CardDeclined, Processor, ProcessorUnavailable

log = logging.getLogger(__name__)

CURRENCY = "usd"
MAX_TOKEN_LENGTH = 255


def idempotency_key(order_id: str, number: int) -> str:
    return f"order-{order_id}-{number}"


def amount_cents(order: dict) -> int:
    if order.get("amountCents") is not None:
        return int(order["amountCents"])
    cents = Decimal(str(order["ticket"]["price"])) * 100
    if cents != cents.to_integral_value() or cents <= 0:
        raise ValueError(f"order {order['id']} has an unpayable price {order['ticket']['price']!r}")
    return int(cents)


def check_input(order_id, token) -> None:
    if not isinstance(order_id, str) or not is_valid_id(order_id):
        raise NotFound("Order not found")
    if not isinstance(token, str) or not token.strip():
        raise BadRequest("Token is required", field="token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadRequest("Token is too long", field="token")


def find_payment(session, order_id: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.order_id == order_id)).first()


def open_attempt(tx, order: dict, token: str) -> tuple[ChargeAttempt, bool]:
    """The attempt to settle next: ``(pending attempt left over, True)``, else ``(new attempt for token, False)``."""
    session = tx.session
    if find_payment(session, order["id"]) is not None:
        raise Conflict("Order has already been paid")
    latest = session.scalars(select(ChargeAttempt).where(ChargeAttempt.order_id == order["id"])
                             .order_by(ChargeAttempt.number.desc()).limit(1)).first()
    if latest is not None and latest.state == ChargeAttempt.PENDING:
        return latest, True
    number = (latest.number + 1) if latest is not None else 1
    attempt = ChargeAttempt(order_id=order["id"], number=number, idempotency_key=idempotency_key(order["id"], number),
                            token=token.strip(), amount_cents=amount_cents(order), currency=CURRENCY,
                            state=ChargeAttempt.PENDING, created_at=events.utcnow())
    session.add(attempt)
    session.flush()
    return attempt, False


def record_success(tx, attempt: ChargeAttempt, charge_id: str, processor: str) -> Payment:
    attempt = tx.session.get(ChargeAttempt, attempt.id)
    attempt.state, attempt.charge_id, attempt.settled_at = ChargeAttempt.SUCCEEDED, charge_id, events.utcnow()
    payment = Payment(order_id=attempt.order_id, charge_id=charge_id, amount_cents=attempt.amount_cents,
                      currency=attempt.currency, processor=processor, created_at=events.utcnow())
    tx.session.add(payment)
    tx.session.flush()
    tx.emit(events.PAYMENT_CREATED, id=payment.id, orderId=payment.order_id, chargeId=payment.charge_id)
    return payment


def record_decline(tx, attempt: ChargeAttempt, message: str) -> None:
    attempt = tx.session.get(ChargeAttempt, attempt.id)
    attempt.state, attempt.message, attempt.settled_at = ChargeAttempt.DECLINED, message[:500], events.utcnow()


def settle(store, processor: Processor, attempt: ChargeAttempt, order: dict) -> Payment:
    """Send one attempt to the processor and commit what came back. Raises CardDeclined / ProcessorUnavailable."""
    try:
        charge_id = processor.charge(
            amount_cents=attempt.amount_cents, currency=attempt.currency, token=attempt.token,
            idempotency_key=attempt.idempotency_key, description=f"Ticket {order['ticket'].get('title', '')}".strip(),
            metadata={"order_id": attempt.order_id},
        )
    except CardDeclined as declined:
        with store.transaction() as tx:
            record_decline(tx, attempt, declined.message)
        raise
    try:
        with store.transaction() as tx:
            return record_success(tx, attempt, charge_id, processor.name)
    except Exception:
        # The money moved but could not be recorded: the attempt stays pending and the
        # order stays held; the next try (or orders' reconciliation of the hold, then a
        # new payment) replays the same key and records the same charge.
        log.critical("order %s was charged (%s) but the payment could not be recorded; it will be "
                     "recorded when the attempt is replayed", attempt.order_id, charge_id, exc_info=True)
        raise


def pay_for_order(store, orders, processor: Processor, user_id: str, order_id: str, token: str) -> dict:
    """Charge ``user_id``'s order ``order_id`` with card ``token``; returns ``{"id": payment id}``."""
    check_input(order_id, token)
    order = orders.hold_for_payment(order_id, user_id)  # NotFound / Forbidden / Conflict
    try:
        with store.transaction() as tx:
            attempt, leftover = open_attempt(tx, order, token)
    except Conflict:
        raise  # already paid: payment:created is on its way and completes the order; keep the hold
    except BaseException:
        _release(orders, order_id)
        raise

    try:
        if leftover:
            # An earlier attempt's outcome is unknown: replaying its key finds a charge that did happen.
            try:
                return {"id": settle(store, processor, attempt, order).id}
            except CardDeclined:
                log.info("left-over attempt %s of order %s was declined; charging the new card",
                         attempt.number, order_id)
            with store.transaction() as tx:
                attempt, _ = open_attempt(tx, order, token)
        return {"id": settle(store, processor, attempt, order).id}
    except CardDeclined as declined:
        _release(orders, order_id)
        raise PaymentDeclined(declined.message, field="token") from None
    except ProcessorUnavailable:
        log.exception("the payment processor failed for order %s; attempt %s stays open", order_id, attempt.number)
        _release(orders, order_id)
        raise ServiceUnavailable("The payment processor is unavailable and nothing was recorded; "
                                 "try again shortly (you will not be charged twice)") from None


def _release(orders, order_id: str) -> None:
    try:
        orders.release_hold(order_id)
    except Exception:
        # The hold then lapses through orders' reconciliation; nothing was charged.
        log.exception("could not release the payment hold of order %s", order_id)
