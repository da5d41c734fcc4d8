"""Payment rules: hold the order, charge it at most once, record the outcome, let go only when no money moved.

The orders service is the authority on an order's status. Before any money
moves it holds the order (``created`` -> ``awaiting:payment``); the hold makes
concurrent payments of one order and a racing expiry lose with a 409 instead
of charging, and expiry never cancels a held order. Then:

* every charge is an attempt row written first, with an idempotency key
  derived from the order, so a repeat never charges twice;
* success: the payment row and ``payment:created`` are committed together
  (the outbox), and orders completes the order;
* declined: the attempt is closed, the hold released (the order goes back to
  ``created``, or ``cancelled`` if its time ran out meanwhile) and 402 raised;
* refused before execution (bad key, invalid request): nothing was charged, the
  attempt is closed as ``failed``, the hold released and 503 raised;
* unknown outcome (timeout, 5xx, the service died mid-charge): the attempt stays
  ``pending`` and the order stays held (503 for the buyer). The reconciliation
  timer (:func:`reconcile`) replays the attempt with its own key and the same
  parameters, so the processor answers with the original result (or performs
  the charge if it never arrived), and records success or decline as above.
  Still unknown at the give-up age: the attempt is ``abandoned`` and the order
  stays held, with a CRITICAL log for an operator, because money may have moved.

While an attempt is pending the order is held, so a concurrent payment gets
409 "Order is being paid" from the hold. Should the hold have been released
anyway (orders' stale-hold timer), a new payment takes the hold again and
answers 503 until reconciliation has settled the pending attempt.

On PostgreSQL an attempt is sent only while its row is locked (``FOR UPDATE
SKIP LOCKED``), so two replicas (or a payment and the reconciler) never send the
same attempt at once; on SQLite (one process) outcomes are recorded with a
conditional UPDATE, so the first recorded outcome wins.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from services.common import events
from services.common.errors import BadRequest, Conflict, NotFound, PaymentDeclined, ServiceUnavailable
from services.common.validation import is_valid_id

from .models import ChargeAttempt, Payment
from .processors import CardDeclined, Processor, ProcessorUnavailable

log = logging.getLogger(__name__)

CURRENCY = "usd"
MAX_TOKEN_LENGTH = 255

UNCONFIRMED = ("We could not confirm your payment yet; your order is held while we check — "
               "you will not be charged twice")
NOTHING_CHARGED = "The payment processor is unavailable and nothing was charged; try again shortly"
UNDER_REVIEW = ("A previous payment of this order could not be confirmed; it is being checked "
                "and you will not be charged twice")

#: reconciliation defaults (seconds); the service reads PAYMENTS_RECONCILE_* settings
RECONCILE_INTERVAL = 10.0
RECONCILE_MIN_AGE = 5.0
RECONCILE_GIVE_UP_AGE = 30 * 60.0


def idempotency_key(order_id: str, number: int) -> str:
    return f"order-{order_id}-{number}"


def amount_cents(order: dict) -> int:
    if order.get("amountCents") is not None:
        return int(order["amountCents"])
    cents = Decimal(str(order["ticket"]["price"])) * 100
    if cents != cents.to_integral_value() or cents <= 0:
        raise ValueError(f"order {order['id']} has an unpayable price {order['ticket']['price']!r}")
    return int(cents)


def description_of(order: dict) -> str:
    return f"Ticket {order['ticket'].get('title', '')}".strip()


def check_input(order_id, token) -> None:
    if not isinstance(order_id, str) or not is_valid_id(order_id):
        raise NotFound("Order not found")
    if not isinstance(token, str) or not token.strip():
        raise BadRequest("Token is required", field="token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadRequest("Token is too long", field="token")


def find_payment(session, order_id: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.order_id == order_id)).first()


def _postgres(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def open_attempt(tx, order: dict, token: str) -> ChargeAttempt:
    """A new pending attempt for ``token``, unless the order is paid or its last attempt is unsettled.

    Raises Conflict (paid; or abandoned, for an operator) or ServiceUnavailable (pending:
    reconciliation settles it). The caller keeps the hold in those cases.
    """
    session = tx.session
    if find_payment(session, order["id"]) is not None:
        raise Conflict("Order has already been paid")
    query = (select(ChargeAttempt).where(ChargeAttempt.order_id == order["id"])
             .order_by(ChargeAttempt.number.desc()).limit(1).execution_options(populate_existing=True))
    if _postgres(session):
        query = query.with_for_update()  # waits for a reconciler that is recording this order's outcome
    latest = session.scalars(query).first()
    if latest is not None and latest.state == ChargeAttempt.PENDING:
        raise ServiceUnavailable(UNCONFIRMED)
    if latest is not None and latest.state == ChargeAttempt.ABANDONED:
        raise Conflict(UNDER_REVIEW)
    if latest is not None and latest.state == ChargeAttempt.SUCCEEDED:
        raise Conflict("Order has already been paid")  # its payment row is missing: should not happen
    number = (latest.number + 1) if latest is not None else 1
    attempt = ChargeAttempt(order_id=order["id"], number=number, idempotency_key=idempotency_key(order["id"], number),
                            token=token.strip(), amount_cents=amount_cents(order), currency=CURRENCY,
                            description=description_of(order), state=ChargeAttempt.PENDING,
                            created_at=events.utcnow())
    session.add(attempt)
    session.flush()
    return attempt


# -- sending an attempt and recording what came back ---------------------------------

PAID, DECLINED, REFUSED, UNKNOWN, BUSY = "paid", "declined", "refused", "unknown", "busy"


@dataclass
class Outcome:
    kind: str
    charge_id: str | None = None
    message: str = ""
    payment: Payment | None = None
    recorded: bool = False


class _NotRecorded(Exception):
    """The outcome could not be recorded (settled meanwhile elsewhere, or the hold not released)."""


def _pending(session, attempt_id: str, lock: bool) -> ChargeAttempt | None:
    query = (select(ChargeAttempt).where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == ChargeAttempt.PENDING)
             .execution_options(populate_existing=True))
    if lock:
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def _call(processor: Processor, attempt: ChargeAttempt, description: str) -> Outcome:
    try:
        charge_id = processor.charge(
            amount_cents=attempt.amount_cents, currency=attempt.currency, token=attempt.token,
            idempotency_key=attempt.idempotency_key, description=description,
            metadata={"order_id": attempt.order_id},
        )
    except CardDeclined as declined:
        return Outcome(DECLINED, message=declined.message)
    except ProcessorUnavailable as unavailable:
        return Outcome(UNKNOWN if unavailable.maybe_charged else REFUSED, message=str(unavailable))
    return Outcome(PAID, charge_id=charge_id)


def _close(tx, attempt: ChargeAttempt, state: str, **values) -> None:
    """pending -> ``state``, only if still pending (the first recorded outcome wins)."""
    result = tx.session.execute(
        update(ChargeAttempt).where(ChargeAttempt.id == attempt.id, ChargeAttempt.state == ChargeAttempt.PENDING)
        .values(state=state, settled_at=events.utcnow(), **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise _NotRecorded(f"attempt {attempt.idempotency_key} was settled meanwhile")


def _record(tx, attempt: ChargeAttempt, outcome: Outcome, processor_name: str, release, *,
            first_send: bool, abandon: bool) -> None:
    if outcome.kind == PAID:
        _close(tx, attempt, ChargeAttempt.SUCCEEDED, charge_id=outcome.charge_id)
        payment = Payment(order_id=attempt.order_id, charge_id=outcome.charge_id, amount_cents=attempt.amount_cents,
                          currency=attempt.currency, processor=processor_name, created_at=events.utcnow())
        tx.session.add(payment)
        tx.session.flush()
        tx.emit(events.PAYMENT_CREATED, id=payment.id, orderId=payment.order_id, chargeId=payment.charge_id)
        outcome.payment = payment
    elif outcome.kind == DECLINED or (outcome.kind == REFUSED and first_send):
        # No money moved. Close the attempt first (it takes the row), then let go of the order;
        # if orders cannot be reached, nothing is committed and the attempt is replayed later.
        state = ChargeAttempt.DECLINED if outcome.kind == DECLINED else ChargeAttempt.FAILED
        _close(tx, attempt, state, message=outcome.message[:500])
        try:
            release(attempt.order_id)
        except Exception as exc:
            raise _NotRecorded(f"could not release the hold of order {attempt.order_id}: {exc!r}") from exc
    elif abandon:
        # A refusal on a *replay* says nothing about the first request: still unknown.
        _close(tx, attempt, ChargeAttempt.ABANDONED, message=outcome.message[:500])
    else:
        return
    outcome.recorded = True


def send(store, processor: Processor, attempt_id: str, release, *, first_send: bool = False,
         abandon_if_unknown: bool = False, description: str | None = None) -> Outcome:
    """Send a pending attempt to the processor and commit what came back; ``BUSY`` if it is not ours to send.

    ``release(order_id)`` lets go of the order's hold on a decline (before the decline is committed).
    """
    def recorded(tx, attempt, outcome):
        try:
            _record(tx, attempt, outcome, processor.name, release, first_send=first_send, abandon=abandon_if_unknown)
        except _NotRecorded:
            raise
        except Exception:
            if outcome.kind == PAID:
                log.critical("order %s was charged (%s) but the payment could not be recorded; the attempt "
                             "stays pending and reconciliation records it", attempt.order_id, outcome.charge_id,
                             exc_info=True)
            raise

    try:
        if store.engine.dialect.name == "postgresql":
            # The row lock is held while the request is in flight: other replicas skip this attempt.
            with store.transaction() as tx:
                attempt = _pending(tx.session, attempt_id, lock=True)
                if attempt is None:
                    return Outcome(BUSY)
                outcome = _call(processor, attempt, attempt.description if description is None else description)
                recorded(tx, attempt, outcome)
            return outcome
        # SQLite: no row locks, and a write transaction held over an HTTP call would stop every other writer.
        with store.read() as session:
            attempt = _pending(session, attempt_id, lock=False)
            if attempt is not None:
                session.expunge(attempt)  # a plain snapshot: the read's rollback must not expire it
        if attempt is None:
            return Outcome(BUSY)
        outcome = _call(processor, attempt, attempt.description if description is None else description)
        with store.transaction() as tx:
            recorded(tx, attempt, outcome)
        return outcome
    except _NotRecorded as not_recorded:
        log.warning("%s; leaving it to reconciliation", not_recorded)
        return outcome


# -- the buyer's payment --------------------------------------------------------------

def pay_for_order(store, orders, processor: Processor, user_id: str, order_id: str, token: str) -> dict:
    """Charge ``user_id``'s order ``order_id`` with card ``token``; returns ``{"id": payment id}``."""
    check_input(order_id, token)
    order = orders.hold_for_payment(order_id, user_id)  # NotFound / Forbidden / Conflict (also: being paid)
    try:
        with store.transaction() as tx:
            attempt = open_attempt(tx, order, token)
    except (Conflict, ServiceUnavailable):
        raise  # paid, or an earlier attempt is unsettled: keep the hold (money may have moved)
    except BaseException:
        _release(orders, order_id)
        raise

    try:
        outcome = send(store, processor, attempt.id, orders.release_hold, first_send=True)
    except Exception:
        # e.g. the database failed while recording: the attempt stays pending and the order held
        log.exception("payment of order %s (attempt %s) could not be completed; reconciliation takes over",
                      order_id, attempt.idempotency_key)
        raise ServiceUnavailable(UNCONFIRMED) from None
    if outcome.kind == PAID and outcome.recorded:
        return {"id": outcome.payment.id}
    if outcome.kind == PAID:
        # recorded by someone else meanwhile (only possible on SQLite: reconciliation raced us)
        with store.read() as session:
            payment = find_payment(session, order_id)
        if payment is not None:
            return {"id": payment.id}
    if outcome.kind == DECLINED:
        raise PaymentDeclined(outcome.message, field="token")
    if outcome.kind == REFUSED and outcome.recorded:
        log.error("the payment processor refused the request for order %s (nothing charged): %s",
                  order_id, outcome.message)
        raise ServiceUnavailable(NOTHING_CHARGED)
    log.warning("payment of order %s (attempt %s) has an unknown outcome (%s); the order stays held and "
                "reconciliation replays the attempt", order_id, attempt.idempotency_key, outcome.message or outcome.kind)
    raise ServiceUnavailable(UNCONFIRMED)


def _release(orders, order_id: str) -> None:
    try:
        orders.release_hold(order_id)
    except Exception:
        # The hold then lapses through orders' stale-hold timer; nothing was charged.
        log.exception("could not release the payment hold of order %s", order_id)


# -- reconciliation ---------------------------------------------------------------------

def pending_ids(session, min_age: float, now: datetime | None = None, limit: int = 100) -> list[str]:
    """Pending attempts older than ``min_age`` seconds, oldest first."""
    cutoff = (now or events.utcnow()) - timedelta(seconds=min_age)
    query = (select(ChargeAttempt.id).where(ChargeAttempt.state == ChargeAttempt.PENDING,
                                            ChargeAttempt.created_at <= cutoff)
             .order_by(ChargeAttempt.created_at).limit(limit))
    return list(session.scalars(query))


def reconcile(store, orders, processor: Processor, *, min_age: float = RECONCILE_MIN_AGE,
              give_up_age: float = RECONCILE_GIVE_UP_AGE, now: datetime | None = None) -> dict:
    """Replay every pending attempt older than ``min_age``; returns how many ended how (for logs and tests)."""
    now = now or events.utcnow()
    with store.read() as session:
        ids = pending_ids(session, min_age, now)
    counts = {PAID: 0, DECLINED: 0, UNKNOWN: 0, "abandoned": 0, BUSY: 0, "errors": 0}
    for attempt_id in ids:
        try:
            kind = reconcile_attempt(store, orders, processor, attempt_id, give_up_age=give_up_age, now=now)
        except Exception:
            log.exception("reconciliation of charge attempt %s failed; next round", attempt_id)
            kind = "errors"
        counts[kind] += 1
    return counts


def reconcile_attempt(store, orders, processor: Processor, attempt_id: str, *, give_up_age: float,
                      now: datetime | None = None) -> str:
    now = now or events.utcnow()
    with store.read() as session:
        attempt = session.get(ChargeAttempt, attempt_id)
        if attempt is None or attempt.state != ChargeAttempt.PENDING:
            return BUSY
        session.expunge(attempt)
    age = (now - attempt.created_at).total_seconds()
    description = attempt.description
    if description is None:  # an attempt written before descriptions were kept: rebuild it the same way
        description = description_of(orders.get_order(attempt.order_id))
    abandon = age >= give_up_age
    outcome = send(store, processor, attempt_id, orders.release_hold, abandon_if_unknown=abandon,
                   description=description)
    if outcome.kind == PAID:
        log.warning("reconciliation: order %s was charged (%s, key %s); payment %s", attempt.order_id,
                    outcome.charge_id, attempt.idempotency_key, "recorded" if outcome.recorded else "not recorded yet")
        return PAID if outcome.recorded else UNKNOWN
    if outcome.kind == DECLINED:
        log.info("reconciliation: attempt %s of order %s was declined (%s); hold %s", attempt.idempotency_key,
                 attempt.order_id, outcome.message, "released" if outcome.recorded else "not released yet")
        return DECLINED if outcome.recorded else UNKNOWN
    if outcome.kind == BUSY:
        return BUSY
    if abandon and outcome.recorded:
        log.critical(
            "reconciliation gave up on order %s after %.0f s: the processor still gives no answer for "
            "idempotency key %s (%s). Money may have moved, so the order stays held (awaiting:payment) and "
            "is not cancelled. An operator must look up the charge at the processor (key %s, metadata "
            "order_id=%s, %s %s cents): if there is none, release the hold (n.rpc.orders.release_hold); "
            "if there is one, refund it or record it.", attempt.order_id, age, attempt.idempotency_key,
            outcome.message, attempt.idempotency_key, attempt.order_id, attempt.currency, attempt.amount_cents)
        return "abandoned"
    log.warning("reconciliation: order %s still unconfirmed after %.0f s (%s); next round",
                attempt.order_id, age, outcome.message)
    return UNKNOWN
