"""The payments service with the real orders service on a real broker, charging the fake Stripe with the real library.

SQLite and PostgreSQL. The fake Stripe (tests/support/fake_stripe.py) records
every request the official ``stripe`` library makes.
"""
import time
from decimal import Decimal

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy

from services.common import events
from services.common.errors import Conflict, PaymentDeclined
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
def shop(container_factory, service_config, databases, fake_stripe):
    fake_stripe.reset()
    PaymentListener.seen = []
    orders_config = service_config("orders", databases["orders"])
    payments_config = {**service_config("payments", databases["payments"]),
                       "STRIPE_KEY": "sk_test_fake", "STRIPE_API_BASE": fake_stripe.url}
    for service, config in ((OrdersService, orders_config), (PaymentsService, payments_config),
                            (PaymentListener, orders_config)):
        container_factory(service, config).start()
    return Shop(orders_config, payments_config)


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
