"""The payments service with the real orders service on a real broker, charging the fake Stripe with the real library.

SQLite and PostgreSQL. The fake Stripe (tests/support/fake_stripe.py) records
every request the official ``stripe`` library makes. ``reconciling_shop``
runs payments with a fast reconciliation timer and a short Stripe timeout.
"""
import time
from decimal import Decimal

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from services.common import events
from services.common.errors import Conflict, PaymentDeclined, ServiceUnavailable
from services.orders.service import OrdersService
from services.payments.service import PaymentsService
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.integration

SELLER, ALICE = "5" * 32, "a" * 32


class PaymentListener:
    name = "payment_listener"
    seen: list = []

    @event_handler("payments", events.PAYMENT_CREATED)
    def on_payment(self, payload):
        PaymentListener.seen.append(payload)


@pytest.fixture(scope="module")
def fake_stripe():
    fake = FakeStripe()
    yield fake
    fake.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request):
    """A database URL per service (None: service_config's SQLite file)."""
    if request.param == "sqlite":
        return {"orders": None, "payments": None}
    admin = request.getfixturevalue("postgres_admin")
    return {"orders": admin.create_database(), "payments": admin.create_database()}


class Shop:
    def __init__(self, orders_config, payments_config):
        self.orders_config, self.payments_config = orders_config, payments_config
        self.dispatch = event_dispatcher({"AMQP_URI": orders_config["AMQP_URI"]})
        self.count = 0

    def order(self, price="12.50") -> dict:
        """A ticket listed by SELLER and ordered by ALICE."""
        self.count += 1
        ticket_id = f"{self.count:032x}"
        self.dispatch("tickets", events.TICKET_CREATED, events.new_event(
            events.TICKET_CREATED, id=ticket_id, version=0, title="Concert", price=Decimal(price), userId=SELLER))
        with ServiceRpcProxy("orders", self.orders_config) as orders:
            deadline = time.monotonic() + 10
            while True:
                try:
                    return orders.create_order(ALICE, "alice@example.com", ticket_id)
                except Exception:  # the replica has not seen the ticket yet
                    if time.monotonic() > deadline:
                        raise
                    eventlet.sleep(0.05)

    def pay(self, order_id, token="tok_visa", user_id=ALICE):
        with ServiceRpcProxy("payments", self.payments_config) as payments:
            return payments.charge(user_id, order_id, token)

    def status(self, order_id):
        with ServiceRpcProxy("orders", self.orders_config) as orders:
            return orders.get_order(order_id)["status"]

    def wait_for_status(self, order_id, status, timeout=10):
        deadline = time.monotonic() + timeout
        while self.status(order_id) != status:
            assert time.monotonic() < deadline, f"order {order_id} is {self.status(order_id)}, not {status}"
            eventlet.sleep(0.05)


@pytest.fixture
def make_shop(container_factory, service_config, databases, fake_stripe):
    def make(**payments_settings) -> Shop:
        fake_stripe.reset()
        PaymentListener.seen = []
        orders_config = service_config("orders", databases["orders"])
        payments_config = {**service_config("payments", databases["payments"]),
                           "STRIPE_KEY": "sk_test_fake", "STRIPE_API_BASE": fake_stripe.url, **payments_settings}
        for service, config in ((OrdersService, orders_config), (PaymentsService, payments_config),
                                (PaymentListener, orders_config)):
            container_factory(service, config).start()
        return Shop(orders_config, payments_config)

    return make


@pytest.fixture
def shop(make_shop):
    return make_shop()


@pytest.fixture
def reconciling_shop(make_shop):
    """Reconciliation every 0.2 s of attempts older than 0.5 s; Stripe times out after 0.3 s."""
    return make_shop(PAYMENTS_RECONCILE_INTERVAL="0.2", PAYMENTS_RECONCILE_MIN_AGE="0.5", STRIPE_TIMEOUT="0.3")


def test_a_charge_carries_cents_usd_the_token_and_the_order_key_and_completes_the_order(shop, fake_stripe):
    order = shop.order(price="12.50")
    payment = shop.pay(order["id"])
    request, = fake_stripe.charge_requests()
    assert request["headers"]["authorization"] == "Bearer sk_test_fake"
    assert request["headers"]["idempotency-key"] == f"order-{order['id']}-1"
    form = request["form"]
    assert (form["amount"], form["currency"], form["source"]) == ("1250", "usd", "tok_visa")
    assert form["metadata[order_id]"] == order["id"]
    charge, = fake_stripe.charges
    shop.wait_for_status(order["id"], "complete")
    assert PaymentListener.seen[0]["id"] == payment["id"]
    assert (PaymentListener.seen[0]["orderId"], PaymentListener.seen[0]["chargeId"]) == (order["id"], charge["id"])
    with ServiceRpcProxy("payments", shop.payments_config) as payments:
        recorded = payments.get_payment(order["id"])
    assert (recorded["chargeId"], recorded["amountCents"], recorded["currency"]) == (charge["id"], 1250, "usd")
    with pytest.raises(Conflict, match="already paid"):
        shop.pay(order["id"])
    assert len(fake_stripe.charge_requests()) == 1


def test_a_declined_card_is_402_with_stripes_message_and_the_order_can_be_paid_again(shop, fake_stripe):
    order = shop.order()
    with pytest.raises(PaymentDeclined, match="^Your card was declined.$"):
        shop.pay(order["id"], "tok_chargeDeclined")
    assert shop.status(order["id"]) == "created" and fake_stripe.charges == []
    shop.pay(order["id"], "tok_visa")
    keys = [r["headers"]["idempotency-key"] for r in fake_stripe.charge_requests()]
    assert keys == [f"order-{order['id']}-1", f"order-{order['id']}-2"]
    shop.wait_for_status(order["id"], "complete")


def test_a_stripe_5xx_is_retried_by_the_library_with_the_same_key(shop, fake_stripe):
    order = shop.order()
    fake_stripe.fail_next(1, status=500)
    shop.pay(order["id"])
    requests = fake_stripe.charge_requests()
    assert len(requests) == 2 and len({r["headers"]["idempotency-key"] for r in requests}) == 1
    assert len(fake_stripe.charges) == 1


def test_eight_concurrent_payments_of_one_order_charge_once(shop, fake_stripe):
    order = shop.order()
    fake_stripe.delay = 0.3  # a slow processor widens the race

    def pay(_):
        try:
            return shop.pay(order["id"])["id"]
        except Conflict as exc:
            return f"409 {exc}"

    started = time.monotonic()
    results = list(eventlet.GreenPool(8).imap(pay, range(8)))
    elapsed = time.monotonic() - started
    paid = [r for r in results if not r.startswith("409")]
    assert len(paid) == 1, results
    assert all(r.startswith("409") for r in results if r not in paid)
    assert len(fake_stripe.charge_requests()) == 1 and len(fake_stripe.charges) == 1
    shop.wait_for_status(order["id"], "complete")
    assert elapsed < 5, "a charge in flight must not block the other workers"


def test_charges_in_flight_do_not_block_each_other(shop, fake_stripe):
    """The stripe library's blocking HTTP is green under eventlet: 4 slow charges overlap."""
    orders = [shop.order() for _ in range(4)]
    fake_stripe.delay = 1.0
    started = time.monotonic()
    list(eventlet.GreenPool(4).imap(lambda order: shop.pay(order["id"]), orders))
    assert time.monotonic() - started < 3.0  # one after the other would take over 4 s
    assert len(fake_stripe.charges) == 4


# -- unknown outcomes and reconciliation ----------------------------------------------

UNCONFIRMED = "We could not confirm your payment yet"


def test_a_timeout_after_stripe_charged_keeps_the_order_held_and_reconciliation_completes_it_once(
        reconciling_shop, fake_stripe):
    shop = reconciling_shop
    order = shop.order()
    fake_stripe.delay = 1.5  # Stripe charges after 1.5 s; the library gives up after 0.3 s (three tries)
    with pytest.raises(ServiceUnavailable, match=UNCONFIRMED):
        shop.pay(order["id"])
    assert shop.status(order["id"]) == "awaiting:payment"  # held: expiry cannot cancel it
    with pytest.raises(Conflict, match="being paid"):
        shop.pay(order["id"], "tok_mastercard")  # the buyer's retry is refused by the hold, nothing sent
    eventlet.sleep(1.6)  # the first request is charged at the fake meanwhile
    charge, = fake_stripe.charges_for(order["id"])
    fake_stripe.delay = 0.0

    shop.wait_for_status(order["id"], "complete")
    assert fake_stripe.charges_for(order["id"]) == [charge]  # exactly one charge
    requests = fake_stripe.charge_requests()
    assert {r["headers"]["idempotency-key"] for r in requests} == {f"order-{order['id']}-1"}
    assert {r["form"]["source"] for r in requests} == {"tok_visa"}
    with ServiceRpcProxy("payments", shop.payments_config) as payments:
        assert payments.get_payment(order["id"])["chargeId"] == charge["id"]
        assert payments.unsettled_attempts() == []
    assert [p["chargeId"] for p in PaymentListener.seen] == [charge["id"]]


def test_a_5xx_before_stripe_charged_keeps_the_order_held_and_reconciliation_charges_it_once(
        reconciling_shop, fake_stripe):
    shop = reconciling_shop
    order = shop.order()
    fake_stripe.fail_next(1000, status=500)  # Stripe is down: nothing reaches the charge
    with pytest.raises(ServiceUnavailable, match=UNCONFIRMED):
        shop.pay(order["id"])
    assert shop.status(order["id"]) == "awaiting:payment" and fake_stripe.charges == []
    eventlet.sleep(1.0)  # reconciliation rounds while Stripe is still down change nothing
    assert shop.status(order["id"]) == "awaiting:payment" and fake_stripe.charges == []
    with ServiceRpcProxy("payments", shop.payments_config) as payments:
        assert [a["state"] for a in payments.unsettled_attempts()] == ["pending"]

    fake_stripe.reset()  # Stripe is back
    shop.wait_for_status(order["id"], "complete")
    charge, = fake_stripe.charges_for(order["id"])
    assert {r["headers"]["idempotency-key"] for r in fake_stripe.charge_requests()} == {f"order-{order['id']}-1"}
    assert [p["chargeId"] for p in PaymentListener.seen] == [charge["id"]]


def test_a_decline_found_by_reconciliation_releases_the_order_and_another_card_pays(reconciling_shop, fake_stripe):
    shop = reconciling_shop
    order = shop.order()
    fake_stripe.fail_next(1000, status=503)
    with pytest.raises(ServiceUnavailable, match=UNCONFIRMED):
        shop.pay(order["id"], "tok_chargeDeclined")
    assert shop.status(order["id"]) == "awaiting:payment"

    fake_stripe.reset()
    shop.wait_for_status(order["id"], "created")  # released: payable again, or cancelled by expiry
    assert fake_stripe.charges == [] and PaymentListener.seen == []
    shop.pay(order["id"], "tok_visa")
    shop.wait_for_status(order["id"], "complete")
    assert len(fake_stripe.charges_for(order["id"])) == 1


def pending_attempt(postgres_url, order):
    """A payments store on ``postgres_url`` with one attempt for ``order``, sent to no processor yet."""
    from services.payments import service_layer
    from tests.support.unit_store import unit_store

    store = unit_store("payments", postgres_url)
    with store.transaction() as tx:
        attempt = service_layer.open_attempt(tx, order["id"], "tok_visa")
    with store.transaction() as tx:
        assert service_layer._start(tx, attempt.id, order)
    return store, attempt


def test_an_attempt_locked_by_one_replica_is_skipped_by_another(postgres_url):
    """PostgreSQL: a replica sends an attempt only while it holds the row lock (FOR UPDATE SKIP LOCKED)."""
    from sqlalchemy import select

    from services.payments import service_layer
    from services.payments.models import ChargeAttempt
    from services.payments.processors import SandboxProcessor

    order = {"id": "c" * 32, "amountCents": 500, "ticket": {"title": "Opera", "price": "5"}}
    store, attempt = pending_attempt(postgres_url, order)

    class Orders:
        released: list = []

        def release_hold(self, order_id, holder):
            self.released.append(order_id)

        def get_order(self, order_id):
            return order

    class CountingSandbox(SandboxProcessor):
        sent = 0

        def charge(self, **request):
            CountingSandbox.sent += 1
            return super().charge(**request)

    processor = CountingSandbox()
    other_replica = store.engine.connect()
    transaction = other_replica.begin()
    other_replica.execute(select(ChargeAttempt.id).where(ChargeAttempt.id == attempt.id).with_for_update())
    try:
        counts = service_layer.reconcile(store, Orders(), processor, min_age=0)
        assert counts["busy"] == 1 and CountingSandbox.sent == 0  # not sent twice at once
    finally:
        transaction.rollback()
        other_replica.close()
    assert service_layer.reconcile(store, Orders(), processor, min_age=0)["paid"] == 1
    assert CountingSandbox.sent == 1
    with store.read() as session:
        assert session.get(ChargeAttempt, attempt.id).state == "succeeded"
    assert [name for name, _ in store.published] == [events.PAYMENT_CREATED]


def test_the_payers_first_send_waits_for_a_look_by_a_concurrent_payment(postgres_url):
    """PostgreSQL: another payment of the same order row-locks the attempt for a moment (open_attempt
    reads it FOR UPDATE); the payer's own first send waits for that instead of answering "unconfirmed"."""
    from sqlalchemy import select

    from services.payments import domain, service_layer
    from services.payments.models import ChargeAttempt
    from services.payments.processors import SandboxProcessor

    order = {"id": "d" * 32, "amountCents": 700, "ticket": {"title": "Opera", "price": "7"}}
    store, attempt = pending_attempt(postgres_url, order)

    concurrent_payment = store.engine.connect()
    transaction = concurrent_payment.begin()
    concurrent_payment.execute(select(ChargeAttempt.id).where(ChargeAttempt.id == attempt.id).with_for_update())
    sending = eventlet.spawn(service_layer.send, store, SandboxProcessor(), attempt.id, first_send=True)
    eventlet.sleep(0.3)
    transaction.rollback()
    concurrent_payment.close()
    outcome = sending.wait()
    assert (outcome.kind, outcome.recorded) == (domain.PAID, True)
