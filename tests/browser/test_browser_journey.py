"""A person buys and sells in a real browser, on a phone-sized and a desktop-sized window."""
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "secret123"


def unique_email(role):
    return f"{role}-{uuid.uuid4().hex[:8]}@example.com"


def header(page):
    return page.get_by_role("navigation", name="Main")


def sign_up(page, email, screenshot=None, step=None):
    header(page).get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        screenshot(page, step)
    page.get_by_role("button", name="Sign up").click()
    expect(header(page).get_by_text(email)).to_be_visible()


def time_left(page):
    return page.locator("#time-left").inner_text().strip()


def wait_for_order_status(page, status, timeout=20.0):
    """Payment completes asynchronously: look again until the order page shows `status`."""
    deadline = time.monotonic() + timeout
    while True:
        current = page.locator("#order-status").inner_text().strip()
        if current == status:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"order still {current!r} after {timeout}s, expected {status!r}")
        page.wait_for_timeout(1000)
        if page.locator("#order-status").count() == 0 or "refresh" not in page.content():
            page.reload()


def test_buy_and_sell_journey(open_browser, screenshot, viewport):
    title = f"Arctic Monkeys at MSG, row {uuid.uuid4().hex[:4].upper()} ({viewport})"

    # A seller signs up and lists a ticket.
    seller = open_browser()
    seller.goto("/")
    expect(seller.get_by_role("heading", name="Tickets on sale", exact=True)).to_be_visible()
    screenshot(seller, "landing-signed-out")
    seller_email = unique_email("seller")
    sign_up(seller, seller_email, screenshot, "seller-signup-form")
    header(seller).get_by_role("link", name="Sell a ticket").click()
    expect(seller.get_by_role("heading", name="Sell a ticket")).to_be_visible()
    seller.get_by_label("Title").fill(title)
    seller.get_by_label("Price").fill("45.5")
    screenshot(seller, "sell-form")
    seller.get_by_role("button", name="List ticket").click()
    expect(seller.get_by_role("heading", name=title)).to_be_visible()
    expect(seller.get_by_text("$45.50")).to_be_visible()
    expect(seller.get_by_role("link", name="Edit")).to_be_visible()
    ticket_url = seller.url
    screenshot(seller, "ticket-listed")

    # A buyer signs up, finds it on the landing page and purchases it.
    buyer = open_browser()
    buyer.goto("/")
    buyer_email = unique_email("buyer")
    sign_up(buyer, buyer_email)
    expect(buyer.get_by_role("link", name=re.compile(re.escape(title)))).to_be_visible()
    screenshot(buyer, "landing-with-ticket")
    buyer.get_by_role("link", name=re.compile(re.escape(title))).click()
    expect(buyer.get_by_role("heading", name=title)).to_be_visible()
    screenshot(buyer, "ticket-page")
    buyer.get_by_role("button", name="Purchase").click()

    # The order page counts down the time left to pay.
    expect(buyer.get_by_role("heading", name="Your order")).to_be_visible()
    order_url = buyer.url
    expect(buyer.locator("#order-status")).to_have_text("Awaiting payment")
    expect(buyer.locator("#time-left")).to_have_text(re.compile(r"^\d+:\d\d$"))
    first = time_left(buyer)
    minutes, seconds = map(int, first.split(":"))
    assert 0 < minutes * 60 + seconds <= 60
    expect(buyer.locator("#time-left")).not_to_have_text(first, timeout=3000)
    expect(buyer.get_by_text("Test mode").first).to_be_visible()
    screenshot(buyer, "order-countdown")

    # A declined test card says so next to the card choice; the Visa test card pays.
    buyer.get_by_label(re.compile("Card ending in 0002")).check()
    buyer.get_by_role("button", name=re.compile(r"^Pay \$45\.50$")).click()
    expect(buyer.locator("#token-error")).to_contain_text(re.compile("declin", re.I))
    screenshot(buyer, "card-declined")
    buyer.get_by_label(re.compile("Visa ending in 4242")).check()
    buyer.get_by_role("button", name=re.compile(r"^Pay \$45\.50$")).click()
    expect(buyer.get_by_text("Your payment was received")).to_be_visible()
    screenshot(buyer, "payment-received")
    wait_for_order_status(buyer, "Complete")
    expect(buyer.get_by_role("heading", name="Paid. The ticket is yours!")).to_be_visible()
    screenshot(buyer, "order-complete")

    # My orders lists it as complete.
    header(buyer).get_by_role("link", name="My orders").click()
    expect(buyer.get_by_role("heading", name="My orders")).to_be_visible()
    row = buyer.locator(".order-row", has_text=title)
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("Complete")
    screenshot(buyer, "my-orders")

    # The ticket is off the market; the seller sees it taken but not the buyer's order.
    seller.goto("/")
    expect(seller.get_by_role("link", name=re.compile(re.escape(title)))).to_have_count(0)
    seller.goto(ticket_url)
    expect(seller.get_by_role("button", name="Purchase")).to_have_count(0)
    expect(seller.get_by_role("link", name="Edit")).to_have_count(0)
    screenshot(seller, "seller-ticket-taken")
    seller.goto(order_url)
    expect(seller.get_by_role("heading", name="That is not yours")).to_be_visible()
    header(seller).get_by_role("button", name="Sign out").click()
    expect(header(seller).get_by_role("link", name="Sign in")).to_be_visible()
    screenshot(seller, "seller-signed-out")

    # Signing out and in again keeps the order.
    header(buyer).get_by_role("button", name="Sign out").click()
    expect(buyer.get_by_text("You are signed out")).to_be_visible()
    header(buyer).get_by_role("link", name="Sign in").click()
    buyer.get_by_label("Email").fill(buyer_email)
    buyer.get_by_label("Password").fill(PASSWORD)
    buyer.get_by_role("button", name="Sign in").click()
    expect(header(buyer).get_by_text(buyer_email)).to_be_visible()
    header(buyer).get_by_role("link", name="My orders").click()
    expect(buyer.locator(".order-row", has_text=title).locator(".badge")).to_have_text("Complete")


def field_error(page, field_id):
    return page.locator(".field", has=page.locator(f"#{field_id}")).locator(".field-error")


def test_signup_with_bad_input_shows_the_errors_next_to_the_fields(open_browser, screenshot):
    page = open_browser()
    page.goto("/auth/signup")
    email, password = page.get_by_label("Email"), page.get_by_label("Password")

    # A malformed email (and a too-short password).
    email.fill("not-an-email")
    password.fill("ab")
    page.get_by_role("button", name="Sign up").click()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_value("not-an-email")  # what was typed is kept
    expect(field_error(page, "email")).to_contain_text(re.compile("email", re.I))
    error_box = field_error(page, "email").bounding_box()
    assert email.bounding_box()["y"] < error_box["y"] < password.bounding_box()["y"]  # right under its field
    expect(page.get_by_role("alert")).to_be_visible()
    screenshot(page, "bad-email")

    # A good email and a too-short password: now the password is the one in error.
    email.fill(unique_email("newcomer"))
    password.fill("ab")
    page.get_by_role("button", name="Sign up").click()
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(field_error(page, "password")).to_contain_text(re.compile("password", re.I))
    assert field_error(page, "password").bounding_box()["y"] > password.bounding_box()["y"]
    expect(field_error(page, "email")).to_have_count(0)
    expect(password).to_have_value("")  # a password is never sent back to the page
    expect(header(page).get_by_role("link", name="Sign in")).to_be_visible()
    screenshot(page, "short-password")


def test_a_missing_page_has_the_site_look_and_a_way_back(open_browser, screenshot):
    page = open_browser()
    response = page.goto("/tickets/no-such-ticket")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(header(page).get_by_role("link", name="Sign in")).to_be_visible()
    screenshot(page, "not-found")
    page.get_by_role("link", name="Go to the front page").click()
    expect(page.get_by_role("heading", name="Tickets on sale", exact=True)).to_be_visible()
