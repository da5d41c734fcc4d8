"""Payment rules: hold the order, charge it at most once, record the outcome, let go only when no money moved.

This module holds the rules alone: no database session, no call to another
service, nothing that depends on the database in use. The steps that apply
them (transactions, the calls to orders and to the processor) are in
:mod:`services.payments.service_layer`; the charge attempts' rows are written only by
:mod:`services.payments.repository`, and only through :class:`Transition`.

The orders service is the authority on an order's status. Before any money
moves it holds the order (``created`` -> ``awaiting:payment``); the hold makes
concurrent payments of one order and a racing expiry lose with a 409 instead
of charging, and expiry never cancels a held order. Then:

* every charge is an attempt, written first — before the hold is asked for,
  so every hold has an attempt that answers for it (orders records the
  attempt as the holder) — with an idempotency key derived from the order
  (:func:`idempotency_key`), so a repeat never charges twice;
* the payer's request id (the gateway's, or the client's ``Idempotency-Key``)
  is kept with the attempt (:func:`request_key`): the same request again
  (RabbitMQ redelivers the request of a worker that died; a client retries)
  gets the first outcome — 201 with the same payment, the same decline — or
  carries on where it stopped;
* a payer that dies after asking for the hold and before sending the charge
  leaves a ``holding`` attempt: the hold sweep drops it after
  ``PAYMENTS_HOLD_GRACE`` seconds and releases its hold, so the ticket is not
  stranded;
* no call to another service is made inside a database transaction: holds are
  released after the outcome is committed, and the sweep retries a release
  that failed;
* success: the payment row and ``payment:created`` are committed together
  (the outbox), and orders completes the order;
* declined: the attempt is closed, the hold released (the order goes back to
  ``created``, or ``cancelled`` if its time ran out meanwhile) and 402 raised;
* a payment recorded for an order that orders cancelled anyway (an operator
  released its hold) is refunded by the sweep and logged at WARNING;
* refused before execution (bad key, invalid request): nothing was charged, the
  attempt is closed as ``failed``, the hold released and 503 raised;
* unknown outcome (timeout, 5xx, the service died mid-charge): the attempt stays
  ``pending`` and the order stays held (503 for the buyer). Reconciliation
  replays the attempt with its own key and the same parameters, so the
  processor answers with the original result (or performs the charge if it
  never arrived), and records success or decline as above. Still unknown at the
  give-up age: the attempt is ``abandoned`` and the order stays held, with a
  CRITICAL log for an operator, because money may have moved.

While an attempt is pending the order is held, so a concurrent payment gets
409 "Order is being paid" from the hold. Should the hold have been released
anyway (orders' stale-hold timer), a new payment takes the hold again and
answers 409 until reconciliation has settled the pending attempt
(:func:`check_can_open`).

The life of a charge attempt is the table :class:`Transition` (a row per move: from,
to, the event it causes); every move goes through :meth:`Transition.check`, and one
that does not start where the attempt is raises :class:`IllegalTransition`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum

from services.common import events
from services.common.errors import BadRequest, Conflict, NotFound, PaymentDeclined, ServiceUnavailable
from services.common.validation import is_valid_id

CURRENCY = "usd"
MAX_TOKEN_LENGTH = 255

UNCONFIRMED = ("We could not confirm your payment yet; your order is held while we check — "
               "you will not be charged twice")
NOTHING_CHARGED = "The payment processor is unavailable and nothing was charged; try again shortly"
NOT_HELD = "Your order could not be held for payment just now and nothing was charged; try again shortly"
UNDER_REVIEW = ("A previous payment of this order could not be confirmed; it is being checked "
                "and you will not be charged twice")
BEING_PAID = "Order is being paid"
ALREADY_PAID = "Order is already paid"

#: reconciliation defaults (seconds); the service reads PAYMENTS_RECONCILE_* settings
RECONCILE_INTERVAL = 10.0
RECONCILE_MIN_AGE = 5.0
RECONCILE_GIVE_UP_AGE = 30 * 60.0
#: the hold sweep (seconds): how often, and how long a ``holding`` attempt may wait for its hold
#: (more than the internal RPC timeout: a live payer has its answer, or gave up, by then)
HOLD_SWEEP_INTERVAL = 2.0
HOLD_GRACE = 6.0


# -- the life of a charge attempt ------------------------------------------------------

class State(StrEnum):
    """Where a charge attempt is (the ``state`` column of ``charge_attempts``)."""

    #: the hold was asked for, nothing sent yet
    HOLDING = "holding"
    #: sent (or about to be), outcome unknown; the order stays held
    PENDING = "pending"
    #: the processor charged it
    SUCCEEDED = "succeeded"
    #: the processor declined the card
    DECLINED = "declined"
    #: nothing was sent or executed: orders refused the hold, or the processor refused the first send
    FAILED = "failed"
    #: still unknown at the give-up age; money may have moved, an operator decides
    ABANDONED = "abandoned"
    #: its payer died (or lost orders) before sending anything
    DROPPED = "dropped"


#: settled without moving money: a new attempt may follow, and the hold is released
RETRYABLE = frozenset({State.DECLINED, State.FAILED, State.DROPPED})
#: money may have moved (or may still move): the order's hold must stay
UNSETTLED = frozenset({State.HOLDING, State.PENDING, State.ABANDONED, State.SUCCEEDED})


class IllegalTransition(Exception):
    """A move of a charge attempt that :class:`Transition` does not have."""


class Transition(Enum):
    """Every move a charge attempt can make: (from, to, the event it causes)."""

    #: written before the hold is asked for (from nothing)
    OPEN = (None, State.HOLDING, None)
    #: orders granted the hold: the order's reserved price is known, the charge is about to be sent
    START = (State.HOLDING, State.PENDING, None)
    #: orders refused the hold (404, 403, 409): nothing sent, no hold to let go of
    REFUSE_HOLD = (State.HOLDING, State.FAILED, None)
    #: the hold sweep: the payer stopped before charging; its hold is released
    DROP = (State.HOLDING, State.DROPPED, None)
    #: the processor charged the card: the payment row and its event, in one transaction
    SUCCEED = (State.PENDING, State.SUCCEEDED, events.PAYMENT_CREATED)
    #: the processor declined the card; the hold is released
    DECLINE = (State.PENDING, State.DECLINED, None)
    #: the processor refused the first send before executing it; the hold is released
    FAIL = (State.PENDING, State.FAILED, None)
    #: reconciliation gave up on an unknown outcome; the hold stays
    ABANDON = (State.PENDING, State.ABANDONED, None)

    @property
    def source(self) -> State | None:
        return self.value[0]

    @property
    def target(self) -> State:
        return self.value[1]

    @property
    def event(self) -> str | None:
        return self.value[2]

    def check(self, state: str | None) -> State:
        """The state after this move from ``state``; :class:`IllegalTransition` if it does not start there."""
        current = None if state is None else State(state)
        if current is not self.source:
            raise IllegalTransition(f"{self.name} moves a charge attempt from {self.source}, not from {current}")
        return self.target


def _close(attempt, move: Transition, now: datetime, **values) -> dict:
    """The columns a pending ``attempt`` is closed with by ``move`` (besides its state): when, and
    what came back. :class:`IllegalTransition` if ``move`` does not close a pending attempt."""
    if move.source is not State.PENDING:
        raise IllegalTransition(f"{move.name} does not close a pending charge attempt")
    move.check(attempt.state)
    return {"settled_at": now, **values}


# -- the payer's input, the order, the keys ----------------------------------------------

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


def request_key(user_id: str, request_id: str | None) -> str | None:
    """The payer's request id, scoped to the payer (one user's key never finds another's attempt)."""
    if not request_id:
        return None
    return hashlib.sha256(f"{user_id}\n{request_id}".encode()).hexdigest()


# -- may a new attempt be opened? --------------------------------------------------------

class Unsettled(Exception):
    """The order's latest attempt may have moved money (pending, or abandoned): no new one until it is
    settled, and the order is held for it (again, if someone released it). ``answer``: the buyer's."""

    def __init__(self, attempt, answer: Exception):
        super().__init__(attempt.id)
        self.attempt, self.answer = attempt, answer


def check_can_open(latest) -> int:
    """The number of a new attempt after ``latest`` (the order's last one, or None).

    Raises Conflict (paid; being paid) or :class:`Unsettled` (pending: in flight, or reconciliation
    settles it; abandoned: an operator does).
    """
    if latest is None:
        return 1
    state = State(latest.state)
    if state is State.PENDING:
        raise Unsettled(latest, Conflict(BEING_PAID))
    if state is State.ABANDONED:
        raise Unsettled(latest, Conflict(UNDER_REVIEW))
    if state is State.HOLDING:
        raise Conflict(BEING_PAID)
    if state is State.SUCCEEDED:
        raise Conflict(ALREADY_PAID)  # its payment row is missing: should not happen
    return latest.number + 1


# -- what the processor answered, and what follows from it -------------------------------

class OutcomeKind(StrEnum):
    """What sending an attempt came to."""

    PAID = "paid"
    DECLINED = "declined"
    #: the processor refused the request before executing it: nothing charged
    REFUSED = "refused"
    #: no answer, or one that says nothing about the charge: money may have moved
    UNKNOWN = "unknown"
    #: not ours to send: another worker holds it, or it was settled meanwhile
    BUSY = "busy"


#: the outcome kinds by their short names
PAID, DECLINED, REFUSED, UNKNOWN, BUSY = OutcomeKind


@dataclass
class Outcome:
    kind: OutcomeKind
    charge_id: str | None = None
    message: str = ""
    payment: object | None = None
    recorded: bool = False


def closing(kind: OutcomeKind, *, first_send: bool, abandon: bool) -> Transition | None:
    """The move that records ``kind`` for a pending attempt, or None (it stays pending).

    A refusal on a *replay* says nothing about the first request: still unknown, as a timeout is;
    ``abandon`` (reconciliation at the give-up age) closes such an attempt as abandoned.
    """
    if kind is OutcomeKind.PAID:
        return Transition.SUCCEED
    if kind is OutcomeKind.DECLINED:
        return Transition.DECLINE
    if kind is OutcomeKind.REFUSED and first_send:
        return Transition.FAIL
    if kind in (OutcomeKind.REFUSED, OutcomeKind.UNKNOWN) and abandon:
        return Transition.ABANDON
    return None


def releases_hold(outcome: Outcome) -> bool:
    """Was the outcome recorded as one that moved no money (declined, refused)? Then the hold goes."""
    return outcome.recorded and outcome.kind in (OutcomeKind.DECLINED, OutcomeKind.REFUSED)


def refusal(outcome: Outcome) -> Exception:
    """What the buyer is told when a sent attempt did not end in a recorded payment."""
    if outcome.kind is OutcomeKind.DECLINED:
        return PaymentDeclined(outcome.message, field="token")
    if outcome.kind is OutcomeKind.REFUSED and outcome.recorded:
        return ServiceUnavailable(NOTHING_CHARGED)
    return ServiceUnavailable(UNCONFIRMED)
