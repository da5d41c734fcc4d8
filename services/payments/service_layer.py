"""The payments service layer, its steps: each one owns its transactions and its calls to orders and the processor.

The rules they apply are in :mod:`services.payments.domain`, the rows they read
and write in :mod:`services.payments.repository`, the processors in
:mod:`services.payments.processors`. Four flows:

* :func:`pay_for_order`, the buyer's payment: open an attempt (committed), ask
  orders for the hold, move the attempt to ``pending`` (committed), send it and
  record what came back (:func:`send`), then let go of the hold if no money
  moved (:func:`release_for`). No call to another service is made inside a
  database transaction;
* :func:`reconcile`, the timer that replays pending attempts whose outcome is
  unknown;
* :func:`settle_holds`, the hold sweep: drops attempts whose payer died before
  charging, releases the holds that were not let go of, refunds payments of
  cancelled orders (:func:`refund_payment`);
* the look-ups (:func:`payment_of`, :func:`has_unsettled_charge`,
  :func:`unsettled_attempts`) and :func:`note_cancelled`.

An attempt is sent under :meth:`StoreApi.claim <services.common.store.StoreApi.claim>`:
on PostgreSQL only while its row is locked (``FOR UPDATE SKIP LOCKED``; the payer's
first send waits for the lock instead), so two replicas (or a payment and the
reconciler) never send the same attempt at once;
on SQLite (one process) the outcome is recorded with a conditional UPDATE, so
the first recorded outcome wins.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from services.common.validation import is_valid_id

from . import domain, repository
from .domain import Outcome, OutcomeKind, State, Transition
from .models import ChargeAttempt, Payment, Refund
from .processors import CardDeclined, Processor, ProcessorUnavailable

log = logging.getLogger(__name__)


# -- opening an attempt and taking the hold --------------------------------------------

def open_attempt(tx, order_id: str, token: str, request: str | None = None) -> ChargeAttempt:
    """A new ``holding`` attempt, unless the order is paid or its last attempt is unsettled.

    Raises Conflict (paid; being paid) or :class:`domain.Unsettled`.
    """
    session = tx.session
    if repository.find_payment(session, order_id) is not None:
        raise Conflict(domain.ALREADY_PAID)
    number = domain.check_can_open(repository.latest_locked(session, order_id))
    attempt = repository.add(tx, order_id=order_id, number=number,
                           idempotency_key=domain.idempotency_key(order_id, number), token=token.strip(),
                           request=request, now=events.utcnow())
    try:
        session.flush()
    except IntegrityError:  # a concurrent payment of the same order took this number
        raise Conflict(domain.BEING_PAID) from None
    return attempt


def _start(tx, attempt_id: str, order: dict) -> bool:
    """holding -> pending with the reserved amount; False if the hold sweep dropped it meanwhile."""
    return repository.move(tx, attempt_id, Transition.START, amount_cents=domain.amount_cents(order),
                         description=domain.description_of(order))


def _settle_unsent(store, attempt_id: str, transition: Transition, message: str, released: bool) -> bool:
    """holding -> refused or dropped (nothing was sent); ``released``: no hold to let go of."""
    now = events.utcnow()
    with store.transaction() as tx:
        return repository.move(tx, attempt_id, transition, message=message[:500], settled_at=now,
                             released_at=now if released else None)


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
        repository.mark_released(tx, attempt_id, events.utcnow())
    return True


# -- sending an attempt and recording what came back ---------------------------------

class _NotRecorded(Exception):
    """The outcome could not be recorded (settled meanwhile elsewhere)."""


def _call(processor: Processor, attempt: ChargeAttempt, description: str) -> Outcome:
    try:
        charge_id = processor.charge(
            amount_cents=attempt.amount_cents, currency=attempt.currency, token=attempt.token,
            idempotency_key=attempt.idempotency_key, description=description,
            metadata={"order_id": attempt.order_id},
        )
    except CardDeclined as declined:
        return Outcome(OutcomeKind.DECLINED, message=declined.message)
    except ProcessorUnavailable as unavailable:
        kind = OutcomeKind.UNKNOWN if unavailable.maybe_charged else OutcomeKind.REFUSED
        return Outcome(kind, message=str(unavailable))
    return Outcome(OutcomeKind.PAID, charge_id=charge_id)


def _record(tx, attempt: ChargeAttempt, outcome: Outcome, processor_name: str, *,
            first_send: bool, abandon: bool) -> None:
    """Close the pending attempt as the outcome says (if it says anything), in ``tx``.

    A recorded decline (or refusal of a first send) leaves the hold to :func:`release_for`:
    ``released_at`` stays empty until it is let go, so the hold sweep finishes the job if orders
    cannot be reached now."""
    transition = domain.closing(outcome.kind, first_send=first_send, abandon=abandon)
    if transition is None:
        return
    found = {"charge_id": outcome.charge_id} if transition is Transition.SUCCEED else {"message": outcome.message[:500]}
    if not repository.move(tx, attempt.id, transition, **domain._close(attempt, transition, events.utcnow(), **found)):
        raise _NotRecorded(f"attempt {attempt.idempotency_key} was settled meanwhile")
    if transition.event == events.PAYMENT_CREATED:  # the payment and its event, in one transaction (the outbox)
        payment = Payment(order_id=attempt.order_id, charge_id=outcome.charge_id, amount_cents=attempt.amount_cents,
                          currency=attempt.currency, processor=processor_name, created_at=events.utcnow())
        tx.session.add(payment)
        tx.session.flush()
        tx.emit(events.PAYMENT_CREATED, id=payment.id, orderId=payment.order_id, chargeId=payment.charge_id)
        outcome.payment = payment
    outcome.recorded = True


def send(store, processor: Processor, attempt_id: str, *, first_send: bool = False,
         abandon_if_unknown: bool = False, description: str | None = None) -> Outcome:
    """Send a pending attempt to the processor and commit what came back; ``BUSY`` if it is not ours to send.

    A replay skips an attempt another worker holds; the payer's own first send waits for it instead: a
    concurrent payment of the same order holds it only for the moment it takes to look
    (:func:`open_attempt`). A recorded decline (or refusal of a first send) leaves the hold to
    :func:`release_for`.
    """
    try:
        with store.claim(repository.pending(attempt_id), wait=first_send) as claim:
            attempt = claim.row
            if attempt is None:
                return Outcome(OutcomeKind.BUSY)
            outcome = _call(processor, attempt, attempt.description if description is None else description)
            with claim.transaction() as tx:
                try:
                    _record(tx, attempt, outcome, processor.name, first_send=first_send, abandon=abandon_if_unknown)
                except _NotRecorded:
                    raise
                except Exception:
                    if outcome.kind is OutcomeKind.PAID:
                        log.critical("order %s was charged (%s) but the payment could not be recorded; the "
                                     "attempt stays pending and reconciliation records it", attempt.order_id,
                                     outcome.charge_id, exc_info=True)
                    raise
        return outcome
    except _NotRecorded as not_recorded:
        log.warning("%s; leaving it to reconciliation", not_recorded)
        return outcome


# -- the buyer's payment --------------------------------------------------------------

def pay_for_order(store, orders, processor: Processor, user_id: str, order_id: str, token: str,
                  request_id: str | None = None) -> dict:
    """Charge ``user_id``'s order ``order_id`` with card ``token``; returns ``{"id": payment id}``.

    ``request_id`` identifies the payer's request: the same request again gets its first outcome."""
    domain.check_input(order_id, token)
    request = domain.request_key(user_id, request_id)
    if request is not None:
        with store.read() as session:
            earlier = repository.by_request(session, order_id, request)
            if earlier is not None:
                session.expunge(earlier)
        if earlier is not None and earlier.state not in domain.RETRYABLE:
            return _carry_on(store, orders, processor, earlier, user_id)
        if earlier is not None and earlier.state == State.DECLINED:
            raise domain.refusal(Outcome(OutcomeKind.DECLINED, message=earlier.message or "Your card was declined."))
    try:
        with store.transaction() as tx:
            attempt = open_attempt(tx, order_id, token, request)
    except domain.Unsettled as unsettled:
        # Hold the order again for the unsettled attempt (if someone released it): money may have moved.
        try:
            orders.hold_for_payment(order_id, user_id, unsettled.attempt.id)
        except Exception as exc:
            log.info("could not hold order %s again for its unsettled attempt: %r", order_id, exc)
        raise unsettled.answer from None
    return _hold_and_charge(store, orders, processor, attempt, user_id)


def _carry_on(store, orders, processor, attempt: ChargeAttempt, user_id: str) -> dict:
    """The same request again: answer with its first outcome, or carry on where it stopped."""
    if attempt.state == State.SUCCEEDED:
        with store.read() as session:
            payment = repository.find_payment(session, attempt.order_id)
        if payment is not None:
            return {"id": payment.id}
        raise ServiceUnavailable(domain.UNCONFIRMED)
    if attempt.state == State.ABANDONED:
        raise Conflict(domain.UNDER_REVIEW)
    if attempt.state == State.HOLDING:
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
        _settle_unsent(store, attempt.id, Transition.REFUSE_HOLD, str(refused), released=True)
        raise
    except Exception as exc:
        # Orders did not answer in time: the hold may or may not have been taken. The attempt stays
        # `holding`, so the hold sweep drops it and releases the hold (if any) in a few seconds.
        log.warning("could not hold order %s for payment: %r", order_id, exc)
        raise ServiceUnavailable(domain.NOT_HELD) from None
    with store.transaction() as tx:
        started = _start(tx, attempt.id, order)
    if not started:  # the hold sweep dropped this attempt while we waited for the hold
        release_for(store, orders, attempt.id, order_id)
        raise ServiceUnavailable(domain.NOT_HELD)
    try:
        outcome = send(store, processor, attempt.id, first_send=True)
    except Exception:
        # e.g. the database failed while recording: the attempt stays pending and the order held
        log.exception("payment of order %s (attempt %s) could not be completed; reconciliation takes over",
                      order_id, attempt.idempotency_key)
        raise ServiceUnavailable(domain.UNCONFIRMED) from None
    return _answer(store, orders, attempt, outcome)


def _answer(store, orders, attempt: ChargeAttempt, outcome: Outcome) -> dict:
    order_id = attempt.order_id
    if outcome.kind is OutcomeKind.PAID and outcome.recorded:
        return {"id": outcome.payment.id}
    if outcome.kind is OutcomeKind.PAID:
        # recorded by someone else meanwhile (only possible on SQLite: reconciliation raced us)
        with store.read() as session:
            payment = repository.find_payment(session, order_id)
        if payment is not None:
            return {"id": payment.id}
    if domain.releases_hold(outcome):
        release_for(store, orders, attempt.id, order_id)
    answer = domain.refusal(outcome)
    if outcome.kind is OutcomeKind.REFUSED and outcome.recorded:
        log.error("the payment processor refused the request for order %s (nothing charged): %s",
                  order_id, outcome.message)
    elif outcome.kind is not OutcomeKind.DECLINED:
        log.warning("payment of order %s (attempt %s) has an unknown outcome (%s); the order stays held and "
                    "reconciliation replays the attempt", order_id, attempt.idempotency_key,
                    outcome.message or outcome.kind)
    raise answer


# -- look-ups -------------------------------------------------------------------------

def payment_of(store, order_id: str) -> dict:
    """The payment of an order (charge id, amount in cents, processor); NotFound if it has none."""
    with store.read() as session:
        payment = repository.find_payment(session, order_id)
        if payment is None:
            raise NotFound("No payment for this order")
        return payment.to_dict()


def has_unsettled_charge(store, order_id: str) -> bool:
    """May money have moved (or still move) for this order? Then orders must keep its hold: an
    attempt holding, pending or abandoned, or one that succeeded (its payment:created may not have
    been applied by orders yet)."""
    with store.read() as session:
        return repository.has_unsettled(session, order_id)


def unsettled_attempts(store) -> list[dict]:
    """Charge attempts whose outcome is not known (pending, or abandoned by reconciliation), oldest first."""
    with store.read() as session:
        return [attempt.to_dict() for attempt in repository.unknown_outcomes(session)]


# -- the hold sweep: dead payers, holds to let go of, refunds ------------------------------

def settle_holds(store, orders, processor: Processor, *, grace: float = domain.HOLD_GRACE,
                 now: datetime | None = None) -> dict:
    """One round of the hold sweep; returns what it did (for logs and tests)."""
    now = now or events.utcnow()
    counts = {"dropped": 0, "released": 0, "refunded": 0, "errors": 0}
    with store.read() as session:
        dead = repository.holding_ids(session, now - timedelta(seconds=grace))
    for attempt_id in dead:
        if _settle_unsent(store, attempt_id, Transition.DROP, "its payer stopped before charging", released=False):
            counts["dropped"] += 1
    with store.read() as session:
        to_release = repository.unreleased(session)
    for attempt_id, order_id in to_release:
        if release_for(store, orders, attempt_id, order_id):
            counts["released"] += 1
            log.info("released the hold of order %s (attempt %s moved no money)", order_id, attempt_id)
        else:
            counts["errors"] += 1
    with store.read() as session:
        owed = repository.owed_refunds(session)
    for order_id in owed:
        try:
            refund_payment(store, processor, order_id, reason="the order was cancelled")
            counts["refunded"] += 1
        except Exception as exc:
            log.warning("could not refund the payment of cancelled order %s yet: %r; next round", order_id, exc)
            counts["errors"] += 1
    return counts


def note_cancelled(store, order_ids: list[str]) -> None:
    """A batch of order:cancelled — remembered in one statement; a payment of such an order is
    refunded by the hold sweep."""
    with store.transaction() as tx:
        repository.note_cancelled(tx, order_ids, events.utcnow())


def refund_payment(store, processor: Processor, order_id: str, reason: str) -> dict:
    """Give back the payment of ``order_id`` (once: the refund has its own idempotency key and row)."""
    if not isinstance(order_id, str) or not is_valid_id(order_id):
        raise NotFound("No payment for this order")
    with store.read() as session:
        payment = repository.find_payment(session, order_id)
        existing = repository.find_refund(session, order_id)
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
            return repository.find_refund(session, order_id).to_dict()
    log.warning("REFUNDED order %s: payment %s, charge %s, %s cents %s, refund %s (%s)", order_id, payment.id,
                payment.charge_id, payment.amount_cents, payment.currency, refund_id, reason)
    return refund.to_dict()


# -- reconciliation ---------------------------------------------------------------------

#: what reconciliation counts per round
ROUND = (OutcomeKind.PAID, OutcomeKind.DECLINED, OutcomeKind.UNKNOWN, "abandoned", OutcomeKind.BUSY, "errors")


def reconcile(store, orders, processor: Processor, *, min_age: float = domain.RECONCILE_MIN_AGE,
              give_up_age: float = domain.RECONCILE_GIVE_UP_AGE, now: datetime | None = None) -> dict:
    """Replay every pending attempt older than ``min_age``; returns how many ended how (for logs and tests)."""
    now = now or events.utcnow()
    with store.read() as session:
        ids = repository.pending_ids(session, now - timedelta(seconds=min_age))
    counts = {str(kind): 0 for kind in ROUND}
    for attempt_id in ids:
        try:
            kind = reconcile_attempt(store, orders, processor, attempt_id, give_up_age=give_up_age, now=now)
        except Exception:
            log.exception("reconciliation of charge attempt %s failed; next round", attempt_id)
            kind = "errors"
        counts[str(kind)] += 1
    return counts


def reconcile_attempt(store, orders, processor: Processor, attempt_id: str, *, give_up_age: float,
                      now: datetime | None = None) -> str:
    now = now or events.utcnow()
    with store.read() as session:
        attempt = session.get(ChargeAttempt, attempt_id)
        if attempt is None or attempt.state != State.PENDING:
            return OutcomeKind.BUSY
        session.expunge(attempt)
    age = (now - attempt.created_at).total_seconds()
    description = attempt.description
    if description is None:  # an attempt written before descriptions were kept: rebuild it the same way
        description = domain.description_of(orders.get_order(attempt.order_id))
    abandon = age >= give_up_age
    outcome = send(store, processor, attempt_id, abandon_if_unknown=abandon, description=description)
    if outcome.kind is OutcomeKind.DECLINED and outcome.recorded:
        release_for(store, orders, attempt_id, attempt.order_id)
    if outcome.kind is OutcomeKind.PAID:
        log.warning("reconciliation: order %s was charged (%s, key %s); payment %s", attempt.order_id,
                    outcome.charge_id, attempt.idempotency_key, "recorded" if outcome.recorded else "not recorded yet")
        return OutcomeKind.PAID if outcome.recorded else OutcomeKind.UNKNOWN
    if outcome.kind is OutcomeKind.DECLINED:
        log.info("reconciliation: attempt %s of order %s was declined (%s); hold %s", attempt.idempotency_key,
                 attempt.order_id, outcome.message, "released" if outcome.recorded else "not released yet")
        return OutcomeKind.DECLINED if outcome.recorded else OutcomeKind.UNKNOWN
    if outcome.kind is OutcomeKind.BUSY:
        return OutcomeKind.BUSY
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
    return OutcomeKind.UNKNOWN
