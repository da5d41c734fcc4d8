"""Payment rules through the service class (``worker_factory``) on a real SQLite store.

The orders service it calls is the real one on a store of its own
(tests/support/orders_for_payments.py): ``hold_for_payment`` moves created ->
awaiting:payment or raises 404/403/409, ``release_hold`` (the holder's own) and
``release_any_hold`` (an operator's) move it back (or to cancelled once expired),
and the amount is the reserved price in integer cents.
"""

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.common import events
from services.common.errors import (BadRequest, Conflict, Forbidden, NotFound, PaymentDeclined,
                                    ServiceUnavailable)
from services.payments.models import ChargeAttempt, Payment
from services.payments.processors import ProcessorUnavailable, SandboxProcessor
from services.payments.service import PaymentsService
from services.payments.settings import PaymentsSettings
from tests.support.orders_for_payments import OrdersForPayments

ALICE, BOB = "a" * 32, "b" * 32


class FlakyProcessor(SandboxProcessor):
    """The sandbox, plus three ways of failing: down (nothing happens, outcome unknown to us), losing the
    answer (money moved) or refusing the request (nothing happens, and the processor says so)."""

    name = "flaky"

    def __init__(self):
        super().__init__()
        self.down = False
        self.refuse = False
        self.lose_answers = 0
        self.requests: list[dict] = []

    def charge(self, **request):
        self.requests.append(request)
        if self.refuse:
            raise ProcessorUnavailable("Invalid API Key provided", maybe_charged=False)
        if self.down:
            raise ProcessorUnavailable("read timed out")
        charge_id = super().charge(**request)
        if self.lose_answers:
            self.lose_answers -= 1
            raise ProcessorUnavailable("read timed out")
        return charge_id


@pytest.fixture
def store(make_store):
    return make_store("payments")


@pytest.fixture
def orders(make_store):
    return OrdersForPayments(make_store("orders"))


@pytest.fixture
def processor():
    return FlakyProcessor()


#: reconciliation replays at once in these tests; the give-up age is far away unless a test says otherwise
RECONCILE_NOW = PaymentsSettings(payments_reconcile_min_age=0, payments_reconcile_give_up_age=1800)


@pytest.fixture
def service(store, orders, processor):
    return worker_factory(PaymentsService, store=store, orders=orders, processor=processor, settings=RECONCILE_NOW)


def rows(store, model):
    with store.read() as session:
        return session.scalars(select(model)).all()


def test_paying_records_the_payment_and_announces_it(service, store, orders, processor):
    order_id = orders.add("1" * 32, price="12.50")
    result = service.charge(ALICE, order_id, "tok_visa")
    payment, = rows(store, Payment)
    assert result == {"id": payment.id}
    assert (payment.order_id, payment.amount_cents, payment.currency) == (order_id, 1250, "usd")
    request, = processor.requests
    assert request["amount_cents"] == 1250 and request["currency"] == "usd" and request["token"] == "tok_visa"
    assert request["idempotency_key"] == f"order-{order_id}-1"
    assert payment.charge_id == processor.charges[request["idempotency_key"]]["id"]
    (name, payload), = store.published
    assert name == events.PAYMENT_CREATED
    assert (payload["id"], payload["orderId"], payload["chargeId"]) == (payment.id, order_id, payment.charge_id)
    assert orders.status(order_id) == "awaiting:payment"  # orders completes it on payment:created
    assert service.get_payment(order_id)["amountCents"] == 1250


@pytest.mark.parametrize("status, message", [("cancelled", "Order is cancelled"),
                                             ("complete", "Order is already paid"),
                                             ("awaiting:payment", "Order is being paid")])
def test_an_order_that_is_not_payable_is_a_409_without_a_charge(service, orders, processor, store, status, message):
    order_id = orders.add("2" * 32, status=status)
    with pytest.raises(Conflict, match=message):
        service.charge(ALICE, order_id, "tok_visa")
    assert processor.requests == [] and rows(store, Payment) == [] and store.published == []


def test_an_expired_order_is_a_409(service, orders, processor):
    order_id = orders.add("3" * 32, expires_in=-0.001)
    with pytest.raises(Conflict, match="expired"):
        service.charge(ALICE, order_id, "tok_visa")
    assert processor.requests == []


def test_someone_elses_or_no_order(service, orders, processor):
    order_id = orders.add("4" * 32, user=BOB)
    with pytest.raises(Forbidden):
        service.charge(ALICE, order_id, "tok_visa")
    with pytest.raises(NotFound):
        service.charge(ALICE, "5" * 32, "tok_visa")
    with pytest.raises(NotFound):
        service.charge(ALICE, "not-an-id", "tok_visa")
    with pytest.raises(BadRequest) as error:
        service.charge(ALICE, order_id, "  ")
    assert error.value.field == "token"
    assert processor.requests == []


def test_a_declined_card_is_a_402_releases_the_hold_and_another_card_can_pay(service, store, orders, processor):
    order_id = orders.add("6" * 32)
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    assert orders.status(order_id) == "created" and ("release_hold", order_id) in orders.calls
    assert [a.state for a in rows(store, ChargeAttempt)] == ["declined"] and store.published == []

    with pytest.raises(PaymentDeclined, match="No such token"):
        service.charge(ALICE, order_id, "tok_unknown")

    service.charge(ALICE, order_id, "tok_visa")
    keys = [r["idempotency_key"] for r in processor.requests]
    assert keys == [f"order-{order_id}-1", f"order-{order_id}-2", f"order-{order_id}-3"]
    assert len(rows(store, Payment)) == 1


def test_a_decline_after_expiry_cancels_the_order(service, orders):
    order_id = orders.add("7" * 32, expires_in=60)

    original_hold = orders.hold_for_payment

    def hold_then_expire(order_id, user_id, holder=None):
        held = original_hold(order_id, user_id, holder)
        orders.expire(order_id)  # time runs out mid-charge
        return held

    orders.hold_for_payment = hold_then_expire
    with pytest.raises(PaymentDeclined):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    assert orders.status(order_id) == "cancelled"


def attempts(store):
    return sorted(rows(store, ChargeAttempt), key=lambda a: a.number)


def test_an_unknown_outcome_keeps_the_order_held_and_is_a_503(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.lose_answers = 1  # the charge happens, the answer never arrives
    with pytest.raises(ServiceUnavailable) as unavailable:
        service.charge(ALICE, order_id, "tok_visa")
    assert str(unavailable.value) == ("We could not confirm your payment yet; your order is held while we check "
                                      "— you will not be charged twice")
    assert orders.status(order_id) == "awaiting:payment"  # expiry never cancels a held order
    assert ("release_hold", order_id) not in orders.calls
    assert [a.state for a in attempts(store)] == ["pending"] and rows(store, Payment) == []
    assert store.published == []

    # orders' stale-hold sweep asks before it lets go: money may have moved
    assert service.has_unsettled_charge(order_id) is True
    assert service.has_unsettled_charge("9" * 32) is False

    # the buyer tries again meanwhile: nothing is sent while the first attempt is unknown
    with pytest.raises(Conflict, match="Order is being paid"):
        service.charge(ALICE, order_id, "tok_mastercard")
    assert len(processor.requests) == 1 and orders.status(order_id) == "awaiting:payment"


def test_reconciliation_records_a_charge_that_went_through_with_one_charge(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.lose_answers = 1
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")

    counts = service.reconcile_pending()
    assert counts["paid"] == 1
    first, replay = processor.requests
    assert replay == first  # same key, same parameters: the processor replays its first answer
    assert len(processor.charges) == 1
    payment, = rows(store, Payment)
    assert payment.charge_id == processor.charges[f"order-{order_id}-1"]["id"]
    assert [(a.state, a.charge_id) for a in attempts(store)] == [("succeeded", payment.charge_id)]
    (name, payload), = store.published
    assert (name, payload["orderId"], payload["chargeId"]) == (events.PAYMENT_CREATED, order_id, payment.charge_id)
    assert orders.status(order_id) == "awaiting:payment"  # orders completes it on payment:created
    assert ("release_hold", order_id) not in orders.calls

    assert service.reconcile_pending()["paid"] == 0 and len(processor.requests) == 2  # nothing left to do


def test_reconciliation_performs_a_charge_that_never_arrived(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    assert processor.charges == {} and orders.status(order_id) == "awaiting:payment"
    processor.down = False
    assert service.reconcile_pending()["paid"] == 1
    assert len(processor.charges) == 1 and len(rows(store, Payment)) == 1


def test_reconciliation_of_a_decline_releases_the_hold_and_another_card_can_pay(service, store, orders, processor):
    order_id = orders.add("9" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    processor.down = False

    assert service.reconcile_pending()["declined"] == 1
    assert [(a.state, a.message) for a in attempts(store)] == [("declined", "Your card was declined.")]
    assert orders.status(order_id) == "created" and store.published == []

    service.charge(ALICE, order_id, "tok_visa")
    assert [(r["idempotency_key"][-1], r["token"]) for r in processor.requests] == [
        ("1", "tok_chargeDeclined"), ("1", "tok_chargeDeclined"), ("2", "tok_visa")]
    assert [a.state for a in attempts(store)] == ["declined", "succeeded"]
    assert len(rows(store, Payment)) == 1


def test_reconciliation_of_a_decline_after_expiry_cancels_the_order(service, orders, processor):
    order_id = orders.add("9" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    orders.expire(order_id)
    processor.down = False
    service.reconcile_pending()
    assert orders.status(order_id) == "cancelled"


def test_a_decline_whose_hold_cannot_be_released_is_released_by_the_hold_sweep(service, store, orders, processor):
    order_id = orders.add("9" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    processor.down = False
    release = orders.release_hold
    orders.release_hold = lambda order_id, holder: (_ for _ in ()).throw(RuntimeError("orders is down"))
    assert service.reconcile_pending()["declined"] == 1  # the decline is recorded; no RPC inside its transaction
    assert [(a.state, a.released_at) for a in attempts(store)] == [("declined", None)]
    assert orders.status(order_id) == "awaiting:payment"
    assert service.settle_holds()["errors"] == 1  # orders still down: next round
    orders.release_hold = release
    assert service.settle_holds()["released"] == 1
    assert orders.status(order_id) == "created" and attempts(store)[0].released_at is not None
    assert service.settle_holds()["released"] == 0


def test_still_unavailable_is_left_for_the_next_round_with_the_order_held(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    for _ in range(3):
        assert service.reconcile_pending()["unknown"] == 1
    assert [a.state for a in attempts(store)] == ["pending"]
    assert orders.status(order_id) == "awaiting:payment"
    assert {r["idempotency_key"] for r in processor.requests} == {f"order-{order_id}-1"}
    processor.down = False
    assert service.reconcile_pending()["paid"] == 1


def test_young_attempts_are_left_to_the_payment_in_flight(store, orders, processor):
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=PaymentsSettings(payments_reconcile_min_age=60))
    order_id = orders.add("8" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    assert service.reconcile_pending() == {"paid": 0, "declined": 0, "unknown": 0, "abandoned": 0, "busy": 0,
                                           "errors": 0}
    assert len(processor.requests) == 1


def test_at_the_give_up_age_the_attempt_is_abandoned_and_the_order_stays_held(store, orders, processor, caplog):
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=PaymentsSettings(payments_reconcile_min_age=0, payments_reconcile_give_up_age=0))
    order_id = orders.add("8" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    with caplog.at_level("CRITICAL", logger="services.payments.domain"):
        assert service.reconcile_pending()["abandoned"] == 1
    critical, = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert order_id in critical.getMessage() and f"order-{order_id}-1" in critical.getMessage()
    assert [a.state for a in attempts(store)] == ["abandoned"]
    # money may have moved: the hold is kept, so expiry cannot cancel a charged order
    assert orders.status(order_id) == "awaiting:payment" and ("release_hold", order_id) not in orders.calls
    assert service.reconcile_pending()["abandoned"] == 0 and len(processor.requests) == 2  # not replayed again
    assert [a["state"] for a in service.unsettled_attempts()] == ["abandoned"]

    # even if the hold is released by someone else, no new charge is made before an operator looked
    orders.release_any_hold(order_id)
    processor.down = False
    with pytest.raises(Conflict, match="could not be confirmed"):
        service.charge(ALICE, order_id, "tok_visa")
    assert len(processor.requests) == 2 and orders.status(order_id) == "awaiting:payment"


def test_a_refusal_on_a_replay_proves_nothing(store, orders, processor):
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=PaymentsSettings(payments_reconcile_min_age=0))
    order_id = orders.add("8" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    processor.refuse = True  # e.g. the API key was rotated: says nothing about the first request
    assert service.reconcile_pending()["unknown"] == 1
    assert [a.state for a in attempts(store)] == ["pending"] and orders.status(order_id) == "awaiting:payment"


def test_a_request_the_processor_refused_charged_nothing_and_releases_the_hold(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.refuse = True
    with pytest.raises(ServiceUnavailable, match="nothing was charged"):
        service.charge(ALICE, order_id, "tok_visa")
    assert orders.status(order_id) == "created"
    assert [a.state for a in attempts(store)] == ["failed"]
    assert service.reconcile_pending()["unknown"] == 0  # nothing to reconcile
    processor.refuse = False
    service.charge(ALICE, order_id, "tok_visa")
    assert [a.state for a in attempts(store)] == ["failed", "succeeded"]


def test_a_pending_attempt_found_by_a_new_payment_keeps_the_hold_until_reconciled(service, store, orders, processor):
    """Orders' stale-hold timer released the hold while an attempt was unconfirmed (a misconfiguration)."""
    order_id = orders.add("9" * 32)
    processor.lose_answers = 1
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    orders.release_any_hold(order_id)
    with pytest.raises(Conflict, match="Order is being paid"):
        service.charge(ALICE, order_id, "tok_mastercard")
    assert orders.status(order_id) == "awaiting:payment"  # held again
    assert len(processor.requests) == 1  # the new card is not charged while the first attempt is unknown
    assert service.reconcile_pending()["paid"] == 1
    assert len(processor.charges) == 1 and len(rows(store, Payment)) == 1


def test_a_payment_that_cannot_be_recorded_stays_pending_for_reconciliation(service, store, orders, processor,
                                                                             monkeypatch):
    from services.payments import domain

    order_id = orders.add("8" * 32)
    real_close = domain._close

    def failing_close(tx, attempt, state, **values):
        raise RuntimeError("database went away")

    monkeypatch.setattr(domain, "_close", failing_close)
    with pytest.raises(ServiceUnavailable, match="could not confirm"):
        service.charge(ALICE, order_id, "tok_visa")
    assert len(processor.charges) == 1 and rows(store, Payment) == []
    assert orders.status(order_id) == "awaiting:payment"
    monkeypatch.setattr(domain, "_close", real_close)
    assert service.reconcile_pending()["paid"] == 1
    assert len(processor.charges) == 1 and len(rows(store, Payment)) == 1


def test_an_attempt_settled_meanwhile_is_recorded_once(store, orders, processor):
    """SQLite has no row locks: two senders of one attempt race; the first recorded outcome wins."""
    from services.payments import service_layer

    order_id = orders.add("8" * 32)
    processor.down = True
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=RECONCILE_NOW)
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    processor.down = False
    attempt, = attempts(store)
    real_charge = processor.charge

    def charge_while_the_other_records(**request):
        result = real_charge(**request)
        if len(processor.requests) == 2:  # the first replay: the second one overtakes it and records first
            assert service_layer.send(store, processor, attempt.id).recorded
        return result

    processor.charge = charge_while_the_other_records
    outcome = service_layer.send(store, processor, attempt.id)
    assert outcome.kind == "paid" and not outcome.recorded
    assert len(rows(store, Payment)) == 1 and len(store.published) == 1 and len(processor.charges) == 1


def test_sandbox_honours_stripe_test_tokens():
    from services.payments.processors import CardDeclined

    sandbox = SandboxProcessor()
    first = sandbox.charge(amount_cents=100, currency="usd", token="tok_visa", idempotency_key="k")
    assert first.startswith("ch_") and first == sandbox.charge(amount_cents=100, currency="usd", token="tok_visa",
                                                               idempotency_key="k")
    for token, message in (("tok_chargeDeclined", "Your card was declined."),
                           ("tok_chargeDeclinedInsufficientFunds", "Your card has insufficient funds."),
                           ("nonsense", "No such token: 'nonsense'")):
        with pytest.raises(CardDeclined) as declined:
            sandbox.charge(amount_cents=100, currency="usd", token=token, idempotency_key=token)
        assert declined.value.message == message


def test_the_processor_is_chosen_by_configuration(monkeypatch):
    from services.payments.processors import StripeProcessor, processor_for

    monkeypatch.delenv("STRIPE_KEY", raising=False)
    assert isinstance(processor_for(PaymentsSettings.load({})), SandboxProcessor)
    stripe = processor_for(PaymentsSettings.load({"STRIPE_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:9/"}))
    assert isinstance(stripe, StripeProcessor)
    assert stripe.client._requestor._options.base_addresses["api"] == "http://127.0.0.1:9"
    monkeypatch.setenv("STRIPE_KEY", "sk_test_y")
    assert isinstance(processor_for(PaymentsSettings.load({})), StripeProcessor)


# -- the same request again, dead payers, refunds --------------------------------------

def test_the_same_request_again_gets_the_first_payment_and_no_second_charge(service, store, orders, processor):
    order_id = orders.add("a1" * 16)
    first = service.charge(ALICE, order_id, "tok_visa", "req-1")
    orders.set(order_id, status="complete")  # orders applied payment:created meanwhile
    assert service.charge(ALICE, order_id, "tok_visa", "req-1") == first  # a redelivery or a client's retry
    assert len(processor.requests) == 1
    with pytest.raises(Conflict, match="already paid"):  # a new request for a paid order
        service.charge(ALICE, order_id, "tok_visa", "req-2")
    with pytest.raises(Conflict):  # someone else replaying the key gets nothing of it
        service.charge(BOB, order_id, "tok_visa", "req-1")


def test_the_same_request_again_gets_the_same_decline(service, orders, processor):
    order_id = orders.add("a2" * 16)
    with pytest.raises(PaymentDeclined, match="declined"):
        service.charge(ALICE, order_id, "tok_chargeDeclined", "req-1")
    with pytest.raises(PaymentDeclined, match="declined"):
        service.charge(ALICE, order_id, "tok_chargeDeclined", "req-1")
    assert len(processor.requests) == 1


def _die_after_the_hold(store, orders, order_id, request="req-1", user=ALICE):
    """What a payer that died right after orders granted its hold leaves behind."""
    from services.payments import domain, service_layer

    with store.transaction() as tx:
        attempt = service_layer.open_attempt(tx, order_id, "tok_visa", domain.request_key(user, request))
    orders.hold_for_payment(order_id, user, attempt.id)
    return attempt


def test_a_redelivered_request_of_a_payer_that_died_after_the_hold_carries_on(service, store, orders, processor):
    order_id = orders.add("a3" * 16)
    _die_after_the_hold(store, orders, order_id)
    assert orders.status(order_id) == "awaiting:payment"
    payment = service.charge(ALICE, order_id, "tok_visa", "req-1")  # RabbitMQ redelivers it to another worker
    assert payment == {"id": rows(store, Payment)[0].id}
    assert len(processor.requests) == 1 and [a.state for a in attempts(store)] == ["succeeded"]


def test_the_hold_of_a_payer_that_died_before_charging_is_released_by_the_sweep(store, orders, processor):
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=PaymentsSettings(payments_hold_grace=0))
    order_id = orders.add("a4" * 16)
    attempt = _die_after_the_hold(store, orders, order_id)
    assert service.has_unsettled_charge(order_id) is True  # orders' own stale-hold timer keeps its hands off
    with pytest.raises(Conflict, match="being paid"):  # another request meanwhile
        service.charge(ALICE, order_id, "tok_visa", "req-2")
    counts = service.settle_holds()
    assert (counts["dropped"], counts["released"]) == (1, 1)
    assert orders.status(order_id) == "created" and service.has_unsettled_charge(order_id) is False
    assert [a.state for a in attempts(store)] == ["dropped"]
    # a late redelivery of the dead payer's request starts afresh, under a new key
    service.charge(ALICE, order_id, "tok_visa", "req-1")
    assert [r["idempotency_key"] for r in processor.requests] == [f"order-{order_id}-2"]
    assert attempts(store)[0].id == attempt.id


def test_a_payer_that_died_mid_charge_is_finished_by_the_redelivered_request(service, store, orders, processor):
    order_id = orders.add("a5" * 16)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa", "req-1")
    processor.down = False
    first = service.charge(ALICE, order_id, "tok_visa", "req-1")
    assert first == {"id": rows(store, Payment)[0].id}
    assert {r["idempotency_key"] for r in processor.requests} == {f"order-{order_id}-1"}
    assert len(processor.charges) == 1


def test_orders_unreachable_for_the_hold_charges_nothing_and_the_sweep_cleans_up(store, orders, processor):
    service = worker_factory(PaymentsService, store=store, orders=orders, processor=processor,
                             settings=PaymentsSettings(payments_hold_grace=0))
    order_id = orders.add("a6" * 16)
    hold = orders.hold_for_payment

    def hold_then_lose_the_answer(*args):
        hold(*args)
        raise ServiceUnavailable("orders did not answer in time")

    orders.hold_for_payment = hold_then_lose_the_answer
    with pytest.raises(ServiceUnavailable, match="nothing was charged"):
        service.charge(ALICE, order_id, "tok_visa")
    orders.hold_for_payment = hold
    assert processor.requests == [] and orders.status(order_id) == "awaiting:payment"
    service.settle_holds()
    assert orders.status(order_id) == "created"


def test_a_refused_hold_leaves_a_closed_attempt_and_nothing_to_release(service, store, orders):
    order_id = orders.add("a7" * 16, status="cancelled")
    with pytest.raises(Conflict, match="cancelled"):
        service.charge(ALICE, order_id, "tok_visa")
    attempt, = attempts(store)
    assert attempt.state == "failed" and attempt.released_at is not None
    assert service.settle_holds()["released"] == 0 and service.has_unsettled_charge(order_id) is False


def test_orders_never_releases_a_hold_that_payments_reports_as_paid(service, orders):
    order_id = orders.add("a8" * 16)
    service.charge(ALICE, order_id, "tok_visa")
    assert service.has_unsettled_charge(order_id) is True  # payment:created may not be applied by orders yet


def test_a_payment_of_a_cancelled_order_is_refunded_once_and_logged(service, store, orders, processor, caplog):
    from services.payments import service_layer
    from services.payments.models import Refund

    order_id = orders.add("a9" * 16)
    payment = service.charge(ALICE, order_id, "tok_visa")
    assert service.settle_holds()["refunded"] == 0  # not cancelled: nothing to give back
    # order:cancelled (an operator released the hold, then it expired), twice in a batch and redelivered
    service_layer.note_cancelled(store, [order_id, order_id])
    service_layer.note_cancelled(store, [order_id])
    with caplog.at_level("WARNING", logger="services.payments.domain"):
        assert service.settle_holds()["refunded"] == 1
    assert any(order_id in r.getMessage() and "REFUNDED" in r.getMessage() for r in caplog.records)
    refund, = rows(store, Refund)
    assert (refund.payment_id, refund.amount_cents) == (payment["id"], 1250)
    assert service.settle_holds()["refunded"] == 0
    assert service.refund(order_id)["refundId"] == refund.refund_id  # the operator's refund: the same one
    assert len(processor.refunds) == 1


def test_an_operator_refund_of_an_order_without_payment_is_404(service):
    with pytest.raises(NotFound):
        service.refund("b" * 32)
    with pytest.raises(NotFound):
        service.refund("nope")


def test_a_stripe_refund_goes_through_the_official_library_with_its_own_key():
    from services.payments.processors import StripeProcessor
    from tests.support.fake_stripe import FakeStripe

    fake = FakeStripe()
    try:
        stripe = StripeProcessor("sk_test_unit", fake.url, timeout=5)
        charge_id = stripe.charge(amount_cents=3000, currency="usd", token="tok_visa", idempotency_key="order-x-1")
        refund_id = stripe.refund(charge_id=charge_id, amount_cents=3000, idempotency_key="refund-p1")
        assert stripe.refund(charge_id=charge_id, amount_cents=3000, idempotency_key="refund-p1") == refund_id
        refund, = fake.refunds  # the same key again: replayed, not a second refund
        assert (refund["id"], refund["charge"], refund["amount"]) == (refund_id, charge_id, 3000)
        request = [r for r in fake.requests if r["path"] == "/v1/refunds"][0]
        assert request["headers"]["idempotency-key"] == "refund-p1"
    finally:
        fake.stop()
