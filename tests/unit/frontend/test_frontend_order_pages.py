"""My orders, the order page (status, time left, pay form), paying and cancelling."""
import re
import time

import pytest
from tests.unit.frontend.frontend_pages_helpers import Visitor, text


@pytest.fixture
def buyer_with_order(visitor, fake):
    """A signed-in buyer who has just purchased a $12.50 ticket: (visitor, order id, ticket)."""
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz night", "12.5")
    visitor.signup("buyer@example.com")
    location = visitor.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {}).headers["Location"]
    return visitor, location.rsplit("/", 1)[-1], ticket


def test_my_orders_needs_an_account(visitor):
    response = visitor.get("/orders")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/signin?next=%2Forders"
    response = visitor.get("/orders/abc")
    assert response.headers["Location"] == "/auth/signin?next=%2Forders%2Fabc"


def test_my_orders_empty(visitor):
    visitor.signup()
    html = text(visitor.get("/orders"))
    assert "No orders yet" in html and 'href="/"' in html


def test_my_orders_lists_each_order_with_its_status_newest_first(visitor, fake):
    visitor.signup()
    me = next(iter(fake.users.values()))
    seller = fake.add_user("seller@example.com")
    fake.add_order(me, fake.add_ticket(seller, "First show", "10"), status="complete")
    fake.add_order(me, fake.add_ticket(seller, "Second show", "11"), status="cancelled")
    fake.add_order(me, fake.add_ticket(seller, "Third show", "12"))
    fake.add_order(fake.add_user("x@example.com"), fake.add_ticket(seller, "Not mine", "1"))
    html = text(visitor.get("/orders"))
    assert html.index("Third show") < html.index("Second show") < html.index("First show")
    assert "Complete" in html and "Cancelled" in html and "Awaiting payment" in html
    assert "$12.00" in html and "Pay now" in html
    assert "Not mine" not in html


def test_order_page_shows_status_ticket_time_left_and_the_test_mode_pay_form(buyer_with_order):
    visitor, order_id, ticket = buyer_with_order
    html = text(visitor.get(f"/orders/{order_id}"))
    assert "Jazz night" in html and "$12.50" in html and "Awaiting payment" in html
    clock = re.search(r'<time id="time-left"[^>]*data-seconds-left="(\d+)"[^>]*>(\d+):(\d\d)</time>', html)
    assert clock, "time left is rendered by the server"
    assert 890 <= int(clock.group(1)) <= 900 and clock.group(2) in ("14", "15")
    assert "<script nonce=" in html  # the small countdown script
    assert "Test mode" in html
    for token in ("tok_visa", "tok_chargeDeclined"):
        assert f'<input type="radio" id="card-{token}" name="token" value="{token}"' in html
        assert f'<label for="card-{token}">' in html
    assert re.search(r'id="card-tok_visa" name="token" value="tok_visa" checked', html)
    assert "Pay $12.50" in html and f'action="/orders/{order_id}/pay"' in html
    assert "js.stripe.com" not in html


def test_with_a_stripe_key_the_pay_form_uses_stripe_elements(make_app, fake):
    visitor = Visitor(make_app(STRIPE_PUBLISHABLE_KEY="pk_test_123").test_client())
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz night", "12.5")
    visitor.signup()
    order_path = visitor.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {}).headers["Location"]
    response = visitor.get(order_path)
    html = text(response)
    assert '<script src="https://js.stripe.com/v3/"></script>' in html
    assert 'data-key="pk_test_123"' in html and 'id="card-element"' in html
    assert "tok_chargeDeclined" not in html and "Test mode" not in html
    assert "https://js.stripe.com" in response.headers["Content-Security-Policy"]
    # only the pay page loads Stripe
    assert "js.stripe.com" not in text(visitor.get("/"))


def test_paying_with_the_test_card_redirects_and_the_order_completes(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    response = visitor.submit(f"/orders/{order_id}", f"/orders/{order_id}/pay", {"token": "tok_visa"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/orders/{order_id}?paid=1"
    html = text(visitor.get(response.headers["Location"]))
    assert "Thank you! Your payment was received." in html
    assert "Confirming your payment" in html and 'http-equiv="refresh"' in html
    assert f'action="/orders/{order_id}/pay"' not in html  # no second payment form while it settles
    time.sleep(fake.payment_settle_seconds + 0.1)
    html = text(visitor.get(f"/orders/{order_id}?paid=1"))
    assert "Complete" in html and "The ticket is yours" in html and 'http-equiv="refresh"' not in html
    assert "Complete" in text(visitor.get("/orders"))


def test_a_declined_card_is_shown_next_to_the_card_choice_and_the_form_stays(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    response = visitor.submit(f"/orders/{order_id}", f"/orders/{order_id}/pay", {"token": "tok_chargeDeclined"})
    assert response.status_code == 402
    html = text(response)
    cards = html[html.index('<fieldset class="field test-cards'):html.index("</fieldset>")]
    assert 'id="token-error"' in cards and "Your card was declined." in cards
    assert re.search(r'value="tok_chargeDeclined" checked', html)  # the choice is kept
    assert f'action="/orders/{order_id}/pay"' in html
    assert fake.orders[order_id]["status"] == "created"


def test_paying_without_choosing_a_card_asks_for_one(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    response = visitor.submit(f"/orders/{order_id}", f"/orders/{order_id}/pay", {})
    assert response.status_code == 400
    assert "Choose a card" in text(response)
    assert fake.payments == {}


def test_paying_a_cancelled_order_explains_and_links_back_to_the_ticket(buyer_with_order, fake):
    visitor, order_id, ticket = buyer_with_order
    token = visitor.csrf_token(f"/orders/{order_id}")
    fake.orders[order_id]["status"] = "cancelled"
    response = visitor.client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "token": "tok_visa"})
    assert response.status_code == 409
    html = text(response)
    assert "Order is cancelled" in html and "This order is cancelled" in html
    assert f'href="/tickets/{ticket["id"]}">Back to the ticket' in html


def test_an_expired_order_says_so_and_links_back_to_the_ticket(buyer_with_order, fake):
    visitor, order_id, ticket = buyer_with_order
    fake.orders[order_id]["expires"] = time.time() - 1
    html = text(visitor.get(f"/orders/{order_id}"))
    assert "This order is cancelled" in html and "ran out of time" in html
    assert f'href="/tickets/{ticket["id"]}">Back to the ticket' in html
    assert 'action="/orders/' not in html.split('class="site-header"')[1].split("</header>")[1]


def test_an_order_at_its_deadline_shows_time_is_up_until_the_expiry_lands(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    fake.orders[order_id]["expires"] = time.time() + 0.5  # seconds_left rounds down to 0
    html = text(visitor.get(f"/orders/{order_id}"))
    assert "Time is up" in html and 'http-equiv="refresh"' in html
    assert f'action="/orders/{order_id}/pay"' not in html


def test_someone_elses_order_is_not_shown(buyer_with_order, app):
    _, order_id, _ = buyer_with_order
    other = Visitor(app.test_client())
    other.signup("other@example.com")
    response = other.get(f"/orders/{order_id}")
    assert response.status_code == 403
    assert "Jazz night" not in text(response)
    assert other.get("/orders/nosuchorder").status_code == 404


def test_cancelling_an_order_puts_the_ticket_back_on_sale(buyer_with_order, fake):
    visitor, order_id, ticket = buyer_with_order
    response = visitor.submit(f"/orders/{order_id}", f"/orders/{order_id}/cancel", {})
    assert response.status_code == 302 and response.headers["Location"] == f"/orders/{order_id}"
    html = text(visitor.get(f"/orders/{order_id}"))
    assert "Your order is cancelled" in html and "This order is cancelled" in html
    assert fake.tickets[ticket["id"]]["orderId"] is None
    assert "Jazz night" in text(visitor.get("/"))


def test_a_paid_order_cannot_be_cancelled(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    token = visitor.csrf_token(f"/orders/{order_id}")
    fake.orders[order_id]["status"] = "complete"
    response = visitor.client.post(f"/orders/{order_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 302
    html = text(visitor.get(response.headers["Location"]))
    assert "Cannot cancel a completed order" in html and "Complete" in html


def test_field_errors_of_the_api_land_next_to_the_card_choice(buyer_with_order, fake):
    visitor, order_id, _ = buyer_with_order
    response = visitor.submit(f"/orders/{order_id}", f"/orders/{order_id}/pay", {"token": "t" * 501})
    assert response.status_code == 400
    html = text(response)
    cards = html[html.index('<fieldset class="field test-cards'):html.index("</fieldset>")]
    assert "Token must be at most 500 characters" in cards
