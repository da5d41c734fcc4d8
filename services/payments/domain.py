"""Payment rules: hold the order, charge it at most once, record the outcome, let go only when no money moved.

The orders service is the authority on an order's status. Before any money
moves it holds the order (``created`` -> ``awaiting:payment``); the hold makes
concurrent payments of one order and a racing expiry lose with a 409 instead
of charging, and expiry never cancels a held order. Then:

* every charge is an attempt row written first — before the hold is asked
  for, so every hold has an attempt that answers for it (orders records the
  attempt as the holder) — with an idempotency key derived from the order, so
  a repeat never charges twice;
* the payer's request id (the gateway's, or the client's ``Idempotency-Key``)
  is kept with the attempt: the same request again (RabbitMQ redelivers the
  request of a worker that died; a client retries) gets the first outcome —
  201 with the same payment, the same decline — or carries on where it stopped;
* a payer that dies after asking for the hold and before sending the charge
  leaves a ``holding`` attempt: the hold sweep (:func:`settle_holds`, every
  ``PAYMENTS_HOLD_SWEEP_INTERVAL``) drops it after ``PAYMENTS_HOLD_GRACE``
  seconds and releases its hold, so the ticket is not stranded;
* no RPC is made inside a database transaction: holds are released after the
  outcome is committed, and the sweep retries a release that failed;
* success: the payment row and ``payment:created`` are committed together
  (the outbox), and orders completes the order;
* declined: the attempt is closed, the hold released (the order goes back to
  ``created``, or ``cancelled`` if its time ran out meanwhile) and 402 raised;
* a payment recorded for an order that orders cancelled anyway (an operator
  released its hold) is refunded by the sweep and logged at WARNING
  (:func:`refund_payment`, also the operators' ``payments.refund``);
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

import hashlib

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.common import events
from services.common.errors import (BadRequest, Conflict, Forbidden, NotFound, PaymentDeclined,
                                    ServiceUnavailable)
from services.common.validation import is_valid_id

from .models import CancelledOrder, ChargeAttempt, Payment, Refund
from .processors import CardDeclined, Processor, ProcessorUnavailable

log = logging.getLogger(__name__)

CURRENCY = "usd"
MAX_TOKEN_LENGTH = 255

UNCONFIRMED = ("We could not confirm your payment yet; your order is held while we check — "
               "you will not be charged twice")
NOTHING_CHARGED = "The payment processor is unavailable and nothing was charged; try again shortly"
NOT_HELD = "Your order could not be held for payment just now and nothing was charged; try again shortly"
UNDER_REVIEW = ("A previous payment of this order could not be confirmed; it is being checked "
                "and you will not be charged twice")

#: reconciliation defaults (seconds); the service reads PAYMENTS_RECONCILE_* settings
RECONCILE_INTERVAL = 10.0
RECONCILE_MIN_AGE = 5.0
RECONCILE_GIVE_UP_AGE = 30 * 60.0
#: the hold sweep (seconds): how often, and how long a ``holding`` attempt may wait for its hold
#: (more than the internal RPC timeout: a live payer has its answer, or gave up, by then)
HOLD_SWEEP_INTERVAL = 2.0
HOLD_GRACE = 6.0
BEING_PAID = "Order is being paid"


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


class _Unsettled(Exception):
    """The order's latest attempt may have moved money (pending, or abandoned): no new one until it is
    settled, and the order is held for it (again, if someone released it)."""

    def __init__(self, attempt: ChargeAttempt, answer: Exception):
        super().__init__(attempt.id)
        self.attempt, self.answer = attempt, answer


def request_key(user_id: str, request_id: str | None) -> str | None:
    """The payer's request id, scoped to the payer (one user's key never finds another's attempt)."""
    if not request_id:
        return None
    return hashlib.sha256(f"{user_id}\n{request_id}".encode()).hexdigest()


def open_attempt(tx, order_id: str, token: str, request: str | None = None) -> ChargeAttempt:
    """A new ``holding`` attempt, unless the order is paid or its last attempt is unsettled.

    Raises Conflict (paid; being paid) or :class:`_Unsettled` (pending: in flight, or reconciliation
    settles it; abandoned: an operator does).
    """
    session = tx.session
    if find_payment(session, order_id) is not None:
        raise Conflict("Order is already paid")
    query = (select(ChargeAttempt).where(ChargeAttempt.order_id == order_id)
             .order_by(ChargeAttempt.number.desc()).limit(1).execution_options(populate_existing=True))
    if _postgres(session):
        query = query.with_for_update()  # waits for a reconciler that is recording this order's outcome
    latest = session.scalars(query).first()
    if latest is not None and latest.state == ChargeAttempt.PENDING:
        raise _Unsettled(latest, Conflict(BEING_PAID))
    if latest is not None and latest.state == ChargeAttempt.ABANDONED:
        raise _Unsettled(latest, Conflict(UNDER_REVIEW))
    if latest is not None and latest.state == ChargeAttempt.HOLDING:
        raise Conflict(BEING_PAID)
    if latest is not None and latest.state == ChargeAttempt.SUCCEEDED:
        raise Conflict("Order is already paid")  # its payment row is missing: should not happen
    number = (latest.number + 1) if latest is not None else 1
    attempt = ChargeAttempt(order_id=order_id, number=number, idempotency_key=idempotency_key(order_id, number),
                            token=token.strip(), currency=CURRENCY, state=ChargeAttempt.HOLDING,
                            request_id=request, created_at=events.utcnow())
    session.add(attempt)
    try:
        session.flush()
    except IntegrityError:  # a concurrent payment of the same order took this number
        raise Conflict(BEING_PAID) from None
    return attempt


def _start(tx, attempt_id: str, order: dict) -> bool:
    """holding -> pending with the reserved amount; False if the hold sweep dropped it meanwhile."""
    result = tx.session.execute(
        update(ChargeAttempt).where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == ChargeAttempt.HOLDING)
        .values(state=ChargeAttempt.PENDING, amount_cents=amount_cents(order), description=description_of(order))
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def _settle_unsent(store, attempt_id: str, state: str, message: str, released: bool) -> bool:
    """holding -> ``state`` (nothing was sent); ``released``: no hold to let go of."""
    now = events.utcnow()
    with store.transaction() as tx:
        result = tx.session.execute(
            update(ChargeAttempt).where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == ChargeAttempt.HOLDING)
            .values(state=state, message=message[:500], settled_at=now, released_at=now if released else None)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


def release_for(store, orders, attempt_id: str, order_id: str) -> bool:
    """Let go of the hold of an attempt that moved no money, then remember it was let go.

    Outside any transaction; if orders cannot be reached, the hold sweep tries again."""
    try:
        orders.release_hold(order_id, attempt_id)
    except Exception as exc:
        log.warning("could not release the hold of order %s (attempt %s): %r; the hold sweep retries",
                    order_id, attempt_id, exc)
        return False
    with store.transaction() as tx:
        tx.session.execute(update(ChargeAttempt).where(ChargeAttempt.id == attempt_id)
                           .values(released_at=events.utcnow()).execution_options(synchronize_session=False))
    return True


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


def _pending(session, attempt_id: str, lock: bool, wait: bool = False) -> ChargeAttempt | None:
    """The attempt if it is pending; ``lock``: and row-locked (PostgreSQL). A replay skips an attempt
    another worker has locked; the payer's own first send (``wait``) waits for the lock instead: a
    concurrent payment of the same order holds it only for the moment it takes to look."""
    query = (select(ChargeAttempt).where(ChargeAttempt.id == attempt_id, ChargeAttempt.state == ChargeAttempt.PENDING)
             .execution_options(populate_existing=True))
    if lock:
        query = query.with_for_update(skip_locked=not wait)
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


def _record(tx, attempt: ChargeAttempt, outcome: Outcome, processor_name: str, *,
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
        # No money moved. The hold is released after the commit (release_for); released_at stays
        # empty until it is, so the hold sweep finishes the job if orders cannot be reached now.
        state = ChargeAttempt.DECLINED if outcome.kind == DECLINED else ChargeAttempt.FAILED
        _close(tx, attempt, state, message=outcome.message[:500])
    elif abandon:
        # A refusal on a *replay* says nothing about the first request: still unknown.
        _close(tx, attempt, ChargeAttempt.ABANDONED, message=outcome.message[:500])
    else:
        return
    outcome.recorded = True


def send(store, processor: Processor, attempt_id: str, *, first_send: bool = False,
         abandon_if_unknown: bool = False, description: str | None = None) -> Outcome:
    """Send a pending attempt to the processor and commit what came back; ``BUSY`` if it is not ours to send.

    A recorded decline (or refusal of a first send) leaves the hold to :func:`release_for`.
    """
    def recorded(tx, attempt, outcome):
        try:
            _record(tx, attempt, outcome, processor.name, first_send=first_send, abandon=abandon_if_unknown)
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
                attempt = _pending(tx.session, attempt_id, lock=True, wait=first_send)
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

def pay_for_order(store, orders, processor: Processor, user_id: str, order_id: str, token: str,
                  request_id: str | None = None) -> dict:
    """Charge ``user_id``'s order ``order_id`` with card ``token``; returns ``{"id": payment id}``.

    ``request_id`` identifies the payer's request: the same request again gets its first outcome."""
    check_input(order_id, token)
    request = request_key(user_id, request_id)
    if request is not None:
        with store.read() as session:
            earlier = session.scalars(
                select(ChargeAttempt).where(ChargeAttempt.order_id == order_id, ChargeAttempt.request_id == request)
                .order_by(ChargeAttempt.number.desc()).limit(1)).first()
            if earlier is not None:
                session.expunge(earlier)
        if earlier is not None and earlier.state not in ChargeAttempt.RETRYABLE:
            return _carry_on(store, orders, processor, earlier, user_id)
        if earlier is not None and earlier.state == ChargeAttempt.DECLINED:
            raise PaymentDeclined(earlier.message or "Your card was declined.", field="token")
    try:
        with store.transaction() as tx:
            attempt = open_attempt(tx, order_id, token, request)
    except _Unsettled as unsettled:
        # Hold the order again for the unsettled attempt (if someone released it): money may have moved.
        try:
            orders.hold_for_payment(order_id, user_id, unsettled.attempt.id)
        except Exception as exc:
            log.info("could not hold order %s again for its unsettled attempt: %r", order_id, exc)
        raise unsettled.answer from None
    return _hold_and_charge(store, orders, processor, attempt, user_id)


def _carry_on(store, orders, processor, attempt: ChargeAttempt, user_id: str) -> dict:
    """The same request again: answer with its first outcome, or carry on where it stopped."""
    if attempt.state == ChargeAttempt.SUCCEEDED:
        with store.read() as session:
            payment = find_payment(session, attempt.order_id)
        if payment is not None:
            return {"id": payment.id}
        raise ServiceUnavailable(UNCONFIRMED)
    if attempt.state == ChargeAttempt.ABANDONED:
        raise Conflict(UNDER_REVIEW)
    if attempt.state == ChargeAttempt.HOLDING:
        log.info("request for order %s repeated before its charge was sent; carrying on", attempt.order_id)
        return _hold_and_charge(store, orders, processor, attempt, user_id)
    # pending: its payer died mid-charge, or another worker is sending it right now (then: BUSY)
    outcome = send(store, processor, attempt.id)
    return _answer(store, orders, attempt, outcome)


def _hold_and_charge(store, orders, processor, attempt: ChargeAttempt, user_id: str) -> dict:
    order_id = attempt.order_id
    try:
        order = orders.hold_for_payment(order_id, user_id, attempt.id)  # NotFound / Forbidden / Conflict
    except (NotFound, Forbidden, Conflict) as refused:
        _settle_unsent(store, attempt.id, ChargeAttempt.FAILED, str(refused), released=True)
        raise
    except Exception as exc:
        # Orders did not answer in time: the hold may or may not have been taken. The attempt stays
        # `holding`, so the hold sweep drops it and releases the hold (if any) in a few seconds.
        log.warning("could not hold order %s for payment: %r", order_id, exc)
        raise ServiceUnavailable(NOT_HELD) from None
    with store.transaction() as tx:
        started = _start(tx, attempt.id, order)
    if not started:  # the hold sweep dropped this attempt while we waited for the hold
        release_for(store, orders, attempt.id, order_id)
        raise ServiceUnavailable(NOT_HELD)
    try:
        outcome = send(store, processor, attempt.id, first_send=True)
    except Exception:
        # e.g. the database failed while recording: the attempt stays pending and the order held
        log.exception("payment of order %s (attempt %s) could not be completed; reconciliation takes over",
                      order_id, attempt.idempotency_key)
        raise ServiceUnavailable(UNCONFIRMED) from None
    return _answer(store, orders, attempt, outcome)


def _answer(store, orders, attempt: ChargeAttempt, outcome: Outcome) -> dict:
    order_id = attempt.order_id
    if outcome.kind == PAID and outcome.recorded:
        return {"id": outcome.payment.id}
    if outcome.kind == PAID:
        # recorded by someone else meanwhile (only possible on SQLite: reconciliation raced us)
        with store.read() as session:
            payment = find_payment(session, order_id)
        if payment is not None:
            return {"id": payment.id}
    if outcome.kind in (DECLINED, REFUSED) and outcome.recorded:
        release_for(store, orders, attempt.id, order_id)
    if outcome.kind == DECLINED:
        raise PaymentDeclined(outcome.message, field="token")
    if outcome.kind == REFUSED and outcome.recorded:
        log.error("the payment processor refused the request for order %s (nothing charged): %s",
                  order_id, outcome.message)
        raise ServiceUnavailable(NOTHING_CHARGED)
    log.warning("payment of order %s (attempt %s) has an unknown outcome (%s); the order stays held and "
                "reconciliation replays the attempt", order_id, attempt.idempotency_key, outcome.message or outcome.kind)
    raise ServiceUnavailable(UNCONFIRMED)


def has_unsettled_charge(session, order_id: str) -> bool:
    """May money have moved (or still move) for this order? Then orders must keep its hold: an
    attempt holding, pending or abandoned, or one that succeeded (its payment:created may not have
    been applied by orders yet)."""
    return session.scalars(
        select(ChargeAttempt.id).where(ChargeAttempt.order_id == order_id,
                                       ChargeAttempt.state.in_(ChargeAttempt.UNSETTLED)).limit(1)
    ).first() is not None


# -- the hold sweep: dead payers, holds to let go of, refunds ------------------------------

def settle_holds(store, orders, processor: Processor, *, grace: float = HOLD_GRACE,
                 now: datetime | None = None) -> dict:
    """One round of the hold sweep; returns what it did (for logs and tests)."""
    now = now or events.utcnow()
    counts = {"dropped": 0, "released": 0, "refunded": 0, "errors": 0}
    cutoff = now - timedelta(seconds=grace)
    with store.read() as session:
        dead = list(session.scalars(select(ChargeAttempt.id).where(
            ChargeAttempt.state == ChargeAttempt.HOLDING, ChargeAttempt.created_at <= cutoff).limit(100)))
    for attempt_id in dead:
        if _settle_unsent(store, attempt_id, ChargeAttempt.DROPPED, "its payer stopped before charging",
                          released=False):
            counts["dropped"] += 1
    with store.read() as session:
        to_release = session.execute(select(ChargeAttempt.id, ChargeAttempt.order_id).where(
            ChargeAttempt.state.in_(ChargeAttempt.RETRYABLE), ChargeAttempt.released_at.is_(None),
        ).limit(100)).all()
    for attempt_id, order_id in to_release:
        if release_for(store, orders, attempt_id, order_id):
            counts["released"] += 1
            log.info("released the hold of order %s (attempt %s moved no money)", order_id, attempt_id)
        else:
            counts["errors"] += 1
    with store.read() as session:
        owed = list(session.scalars(
            select(Payment.order_id).join(CancelledOrder, CancelledOrder.order_id == Payment.order_id)
            .outerjoin(Refund, Refund.payment_id == Payment.id).where(Refund.id.is_(None)).limit(100)))
    for order_id in owed:
        try:
            refund_payment(store, processor, order_id, reason="the order was cancelled")
            counts["refunded"] += 1
        except Exception as exc:
            log.warning("could not refund the payment of cancelled order %s yet: %r; next round", order_id, exc)
            counts["errors"] += 1
    return counts


def note_cancelled(tx, order_id: str) -> None:
    """order:cancelled — remember it; a payment of this order is refunded by the hold sweep."""
    if tx.session.get(CancelledOrder, order_id) is None:
        tx.session.add(CancelledOrder(order_id=order_id, cancelled_at=events.utcnow()))
        tx.session.flush()


def refund_payment(store, processor: Processor, order_id: str, reason: str) -> dict:
    """Give back the payment of ``order_id`` (once: the refund has its own idempotency key and row)."""
    if not isinstance(order_id, str) or not is_valid_id(order_id):
        raise NotFound("No payment for this order")
    with store.read() as session:
        payment = find_payment(session, order_id)
        existing = session.scalars(select(Refund).where(Refund.order_id == order_id)).first()
        if existing is not None:
            return existing.to_dict()
        if payment is None:
            raise NotFound("No payment for this order")
        session.expunge(payment)
    try:
        refund_id = processor.refund(charge_id=payment.charge_id, amount_cents=payment.amount_cents,
                                     idempotency_key=f"refund-{payment.id}")
    except ProcessorUnavailable as exc:
        raise ServiceUnavailable(f"The payment processor could not refund it yet: {exc}") from None
    try:
        with store.transaction() as tx:
            refund = Refund(order_id=order_id, payment_id=payment.id, charge_id=payment.charge_id,
                            refund_id=refund_id, amount_cents=payment.amount_cents, reason=reason[:200],
                            created_at=events.utcnow())
            tx.session.add(refund)
    except IntegrityError:  # recorded by a concurrent refund of the same payment (same key: one refund)
        with store.read() as session:
            return session.scalars(select(Refund).where(Refund.order_id == order_id)).one().to_dict()
    log.warning("REFUNDED order %s: payment %s, charge %s, %s cents %s, refund %s (%s)", order_id, payment.id,
                payment.charge_id, payment.amount_cents, payment.currency, refund_id, reason)
    return refund.to_dict()


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
    outcome = send(store, processor, attempt_id, abandon_if_unknown=abandon, description=description)
    if outcome.kind == DECLINED and outcome.recorded:
        release_for(store, orders, attempt_id, attempt.order_id)
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
            "order_id=%s, %s %s cents): if there is none, release the hold (n.rpc.orders.release_any_hold); "
            "if there is one, refund it or record it.", attempt.order_id, age, attempt.idempotency_key,
            outcome.message, attempt.idempotency_key, attempt.order_id, attempt.currency, attempt.amount_cents)
        return "abandoned"
    log.warning("reconciliation: order %s still unconfirmed after %.0f s (%s); next round",
                attempt.order_id, age, outcome.message)
    return UNKNOWN
