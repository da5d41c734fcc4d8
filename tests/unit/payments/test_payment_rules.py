"""Payment rules through the service class (``worker_factory``): a fake orders service, a real SQLite store.

The fake orders service keeps the contract of the real one: ``hold_for_payment``
moves created -> awaiting:payment or raises 404/403/409, ``release_hold`` moves it
back (or to cancelled once expired).
"""
from datetime import timedelta

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.common import events
from services.common.errors import (BadRequest, Conflict, Forbidden, NotFound, PaymentDeclined,
                                    ServiceUnavailable)
from services.payments.models import ChargeAttempt, Payment
from services.payments.processors import ProcessorUnavailable, SandboxProcessor
from services.payments.service import PaymentsService
from tests.support.unit_store import unit_store

ALICE, BOB = "a" * 32, "b" * 32


class FakeOrders:
    def __init__(self):
        self.orders: dict[str, dict] = {}
        self.calls: list = []

    def add(self, order_id, status="created", user=ALICE, expires_in=60.0, price="12.50"):
        self.orders[order_id] = {"id": order_id, "status": status, "userId": user, "version": 0,
                                 "expiresAt": events.utcnow() + timedelta(seconds=expires_in),
                                 "ticket": {"id": "7" * 32, "title": "Concert", "price": price}}
        return order_id

    def status(self, order_id):
        return self.orders[order_id]["status"]

    def hold_for_payment(self, order_id, user_id):
        self.calls.append(("hold_for_payment", order_id, user_id))
        order = self.orders.get(order_id)
        if order is None:
            raise NotFound("Order not found")
        if order["userId"] != user_id:
            raise Forbidden("This order is not yours")
        if order["status"] == "cancelled":
            raise Conflict("Order is cancelled")
        if order["status"] == "complete":
            raise Conflict("Order is already paid")
        if order["status"] == "awaiting:payment":
            raise Conflict("Order is being paid")
        if order["expiresAt"] <= events.utcnow():
            raise Conflict("Order has expired")
        order["status"], order["version"] = "awaiting:payment", order["version"] + 1
        cents = int(float(order["ticket"]["price"]) * 100)
        return {**order, "expiresAt": events.isoformat(order["expiresAt"]), "amountCents": cents}

    def release_hold(self, order_id):
        self.calls.append(("release_hold", order_id))
        order = self.orders[order_id]
        if order["status"] == "awaiting:payment":
            order["status"] = "cancelled" if order["expiresAt"] <= events.utcnow() else "created"
            order["version"] += 1
        return order


class FlakyProcessor(SandboxProcessor):
    """The sandbox, plus two ways of failing: down (nothing happens) or losing the answer (money moved)."""

    name = "flaky"

    def __init__(self):
        super().__init__()
        self.down = False
        self.lose_answers = 0
        self.requests: list[dict] = []

    def charge(self, **request):
        self.requests.append(request)
        if self.down:
            raise ProcessorUnavailable("connection refused")
        charge_id = super().charge(**request)
        if self.lose_answers:
            self.lose_answers -= 1
            raise ProcessorUnavailable("read timed out")
        return charge_id


@pytest.fixture
def store(tmp_path):
    return unit_store("payments", f"sqlite:///{tmp_path / 'payments.db'}")


@pytest.fixture
def orders():
    return FakeOrders()


@pytest.fixture
def processor():
    return FlakyProcessor()


@pytest.fixture
def service(store, orders, processor):
    return worker_factory(PaymentsService, store=store, orders=orders, processor=processor)


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
    order = orders.orders[order_id]

    original_hold = orders.hold_for_payment

    def hold_then_expire(order_id, user_id):
        held = original_hold(order_id, user_id)
        order["expiresAt"] = events.utcnow() - timedelta(seconds=1)  # time runs out mid-charge
        return held

    orders.hold_for_payment = hold_then_expire
    with pytest.raises(PaymentDeclined):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    assert orders.status(order_id) == "cancelled"


def test_a_lost_answer_is_replayed_with_the_same_key_and_never_charged_twice(service, store, orders, processor):
    order_id = orders.add("8" * 32)
    processor.lose_answers = 1  # the charge happens, the answer never arrives
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_visa")
    assert orders.status(order_id) == "created" and rows(store, Payment) == []
    assert [a.state for a in rows(store, ChargeAttempt)] == ["pending"]

    service.charge(ALICE, order_id, "tok_mastercard")  # the buyer tries again, even with another card
    assert [r["idempotency_key"] for r in processor.requests] == [f"order-{order_id}-1"] * 2
    assert len(processor.charges) == 1  # one charge at the processor
    payment, = rows(store, Payment)
    assert payment.charge_id == processor.charges[f"order-{order_id}-1"]["id"]


def test_a_left_over_attempt_that_turns_out_declined_lets_the_new_card_pay(service, store, orders, processor):
    order_id = orders.add("9" * 32)
    processor.down = True
    with pytest.raises(ServiceUnavailable):
        service.charge(ALICE, order_id, "tok_chargeDeclined")
    processor.down = False
    service.charge(ALICE, order_id, "tok_visa")
    assert [(r["idempotency_key"][-1], r["token"]) for r in processor.requests] == [
        ("1", "tok_chargeDeclined"), ("1", "tok_chargeDeclined"), ("2", "tok_visa")]
    assert [a.state for a in sorted(rows(store, ChargeAttempt), key=lambda a: a.number)] == ["declined", "succeeded"]
    assert len(rows(store, Payment)) == 1


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
    from services.payments.processors import StripeProcessor, processor_from_config

    monkeypatch.delenv("STRIPE_KEY", raising=False)
    assert isinstance(processor_from_config({}), SandboxProcessor)
    stripe = processor_from_config({"STRIPE_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:9/"})
    assert isinstance(stripe, StripeProcessor)
    assert stripe.client._requestor._options.base_addresses["api"] == "http://127.0.0.1:9"
    monkeypatch.setenv("STRIPE_KEY", "sk_test_y")
    assert isinstance(processor_from_config({}), StripeProcessor)
