"""Paying and the confirmation email end to end, through ``ticketing up`` on PostgreSQL and RabbitMQ.

Two apps: the default one (sandbox processor, emails as .eml files) and one
charging the fake Stripe through the real library with a 2 s expiry window,
for the concurrency and the payment-versus-expiry races.
"""
import email
import email.policy
import time
import uuid
from datetime import datetime
from pathlib import Path

import eventlet
import pytest
import requests

from tests.support.fake_stripe import FakeStripe
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture(scope="module")
def fake_stripe():
    fake = FakeStripe()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stripe_app(app_factory, fake_stripe):
    return app_factory(EXPIRATION_WINDOW_SECONDS="2", STRIPE_KEY="sk_test_x", STRIPE_API_BASE=fake_stripe.url)


def signup(app, name):
    session = requests.Session()
    email_address = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    response = session.post(f"{app.url}/api/users/signup", json={"email": email_address, "password": "secret-pass"})
    assert response.status_code == 201, response.text
    session.email = email_address
    return session


def sell(app, seller, title="Jazz Night", price=42.5):
    response = seller.post(f"{app.url}/api/tickets", json={"title": title, "price": price})
    assert response.status_code == 201, response.text
    return response.json()


def order(app, buyer, ticket, timeout=10):
    """Reserve ``ticket``; the orders service learns of a new ticket by event, a moment after it is listed."""
    deadline = time.monotonic() + timeout
    while True:
        response = buyer.post(f"{app.url}/api/orders", json={"ticketId": ticket["id"]})
        if response.status_code != 404 or time.monotonic() > deadline:
            assert response.status_code == 201, response.text
            return response.json()
        time.sleep(0.05)


def pay(app, buyer, order_id, token="tok_visa"):
    return buyer.post(f"{app.url}/api/payments", json={"token": token, "orderId": order_id})


def status(app, buyer, order_id):
    return buyer.get(f"{app.url}/api/orders/{order_id}").json()["status"]


def error(response, status_code):
    assert response.status_code == status_code, response.text
    return response.json()["errors"][0]["message"]


def test_buy_pay_complete_and_the_confirmation_email_is_written(app):
    seller, buyer = signup(app, "seller"), signup(app, "buyer")
    ticket = sell(app, seller, "Jazz Night", 42.5)
    placed = order(app, buyer, ticket)

    paid = pay(app, buyer, placed["id"], "tok_visa")
    assert paid.status_code == 201, paid.text
    assert set(paid.json()) == {"id"}
    wait_for(lambda: status(app, buyer, placed["id"]) == "complete", what="order complete")
    assert wait_for(lambda: requests.get(f"{app.url}/api/tickets/{ticket['id']}").json()["orderId"] == placed["id"])
    assert ticket["id"] not in [t["id"] for t in requests.get(f"{app.url}/api/tickets").json()]

    path = Path(app.env["MAIL_OUTBOX_DIR"]) / f"{placed['id']}.eml"
    wait_for(path.exists, what=f"{path} written")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == buyer.email and "Jazz Night" in message["Subject"]
    link = f"http://localhost:{app.env['PORT']}/orders/{placed['id']}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in ("Jazz Night", "$42.50", placed["id"], link):
        assert part in text and part in html, part

    assert error(pay(app, buyer, placed["id"]), 409) == "Order is already paid"


def test_payment_rules_over_http(app):
    seller, buyer, other = signup(app, "seller"), signup(app, "buyer"), signup(app, "other")
    placed = order(app, buyer, sell(app, seller, "Theatre", 15))

    assert requests.post(f"{app.url}/api/payments", json={"token": "tok_visa", "orderId": placed["id"]}).status_code == 401
    assert error(pay(app, buyer, "0" * 32), 404) == "Order not found"
    assert buyer.post(f"{app.url}/api/payments", json={"token": "tok_visa", "orderId": "x"}).json()["errors"][0]["field"] == "orderId"
    assert buyer.post(f"{app.url}/api/payments", json={"orderId": placed["id"]}).status_code == 400
    assert error(pay(app, other, placed["id"]), 403) == "This order is not yours"

    assert error(pay(app, buyer, placed["id"], "tok_chargeDeclined"), 402) == "Your card was declined."
    assert status(app, buyer, placed["id"]) == "created"  # payable again

    cancelled = order(app, buyer, sell(app, seller, "Ballet", 30))
    assert buyer.delete(f"{app.url}/api/orders/{cancelled['id']}").status_code == 204
    assert error(pay(app, buyer, cancelled["id"]), 409) == "Order is cancelled"

    assert pay(app, buyer, placed["id"], "tok_visa").status_code == 201


def test_eight_concurrent_payments_of_one_order_charge_once(stripe_app, fake_stripe):
    seller, buyer = signup(stripe_app, "seller"), signup(stripe_app, "buyer")
    placed = order(stripe_app, buyer, sell(stripe_app, seller, "Festival", 120))
    # each "browser tab" has its own connection; they share the sign-in cookies
    tabs = []
    for _ in range(8):
        tab = requests.Session()
        tab.cookies.update(buyer.cookies)
        tabs.append(tab)
    answers = list(eventlet.GreenPool(8).imap(lambda tab: pay(stripe_app, tab, placed["id"]), tabs))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7, [(a.status_code, a.text) for a in answers]
    charge, = fake_stripe.charges_for(placed["id"])
    assert (charge["amount"], charge["currency"]) == (12000, "usd")
    wait_for(lambda: status(stripe_app, buyer, placed["id"]) == "complete")


def test_paying_an_expired_order_is_409_without_a_charge(stripe_app, fake_stripe):
    seller, buyer = signup(stripe_app, "seller"), signup(stripe_app, "buyer")
    placed = order(stripe_app, buyer, sell(stripe_app, seller, "Late show", 5))
    expires_at = datetime.fromisoformat(placed["expiresAt"].replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, expires_at - time.time()) + 0.05)
    assert error(pay(stripe_app, buyer, placed["id"]), 409) in ("Order has expired", "Order is cancelled")
    assert fake_stripe.charges_for(placed["id"]) == []
    wait_for(lambda: status(stripe_app, buyer, placed["id"]) == "cancelled")


def test_payments_racing_expiry_either_complete_with_one_charge_or_cancel_with_none(stripe_app, fake_stripe):
    seller, buyer = signup(stripe_app, "seller"), signup(stripe_app, "buyer")
    tickets = [sell(stripe_app, seller, f"Race {n}", 10 + n) for n in range(10)]
    offsets = [-0.3 + 0.6 * n / 9 for n in range(10)]  # -300 ms ... +300 ms around expiresAt

    def pay_at(placed_order, offset):
        expires_at = datetime.fromisoformat(placed_order["expiresAt"].replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, expires_at + offset - time.time()))
        tab = requests.Session()
        tab.cookies.update(buyer.cookies)
        return pay(stripe_app, tab, placed_order["id"]).status_code

    pool, placed, payments = eventlet.GreenPool(10), [], []
    for ticket, offset in zip(tickets, offsets):  # each payment is timed from its own order's expiresAt
        placed.append(order(stripe_app, buyer, ticket))
        payments.append(pool.spawn(pay_at, placed[-1], offset))
    codes = [payment.wait() for payment in payments]
    assert set(codes) <= {201, 409}, codes

    def settled(placed_order):
        return wait_for(lambda: (s := status(stripe_app, buyer, placed_order["id"])) in ("complete", "cancelled") and s,
                        timeout=15, what=f"order {placed_order['id']} settled")

    outcomes = []
    for placed_order, code in zip(placed, codes):
        final = settled(placed_order)
        charges = fake_stripe.charges_for(placed_order["id"])
        outcomes.append((final, code, len(charges)))
        if final == "complete":
            assert code == 201 and len(charges) == 1, outcomes
        else:
            assert code == 409 and charges == [], outcomes
    # the window really was raced: the earliest payment beat the expiry, the latest lost
    assert outcomes[0][0] == "complete" and outcomes[-1][0] == "cancelled", outcomes
