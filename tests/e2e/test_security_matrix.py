"""Who may do what, cookies, stored XSS and secrets in logs, through ``ticketing up`` over HTTP."""
import html
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.orders_support import list_ticket, order, signup
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.fake_stripe import FakeStripe
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture(scope="module")
def world(app):
    """An owner with a ticket and an order on someone else's ticket, another user, an anonymous client."""
    owner, other, seller = signup(app, "owner"), signup(app, "other"), signup(app, "seller")
    own_ticket = list_ticket(app, owner, title="Owner's show")
    bought = list_ticket(app, seller, title="Seller's show")
    own_order = order(app, owner, bought["id"]).json()
    return {"owner": owner, "other": other, "anonymous": requests.Session(), "ticket": own_ticket,
            "order": own_order}


#: (method, path template, body, {who: expected status})
MATRIX = [
    ("GET", "/api/tickets", None, {"anonymous": 200, "other": 200, "owner": 200}),
    ("GET", "/api/tickets/{ticket}", None, {"anonymous": 200, "other": 200, "owner": 200}),
    ("POST", "/api/tickets", {"title": "New", "price": 1}, {"anonymous": 401, "other": 201, "owner": 201}),
    ("PUT", "/api/tickets/{ticket}", {"title": "Edited", "price": 2}, {"anonymous": 401, "other": 403, "owner": 200}),
    ("GET", "/api/orders", None, {"anonymous": 401, "other": 200, "owner": 200}),
    ("POST", "/api/orders", {"ticketId": "{ticket}"}, {"anonymous": 401, "owner": 409}),  # own ticket: 409
    ("GET", "/api/orders/{order}", None, {"anonymous": 401, "other": 403, "owner": 200}),
    ("POST", "/api/payments", {"token": "tok_visa", "orderId": "{order}"}, {"anonymous": 401, "other": 403}),
    ("DELETE", "/api/orders/{order}", None, {"anonymous": 401, "other": 403, "owner": 204}),
    ("GET", "/api/users/currentuser", None, {"anonymous": 200, "other": 200, "owner": 200}),
    ("POST", "/api/users/refresh", {}, {"anonymous": 401}),
    ("POST", "/api/users/signout", {}, {"anonymous": 200}),
]


def fill(value, world):
    if isinstance(value, str):
        return value.replace("{ticket}", world["ticket"]["id"]).replace("{order}", world["order"]["id"])
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def assert_no_leak(log: str, secrets) -> None:
    """No secret, and nothing shaped like a JWT, in ``log``."""
    leaked = sorted(s for s in secrets if s in log)
    assert not leaked, f"secrets in the log: {[s[:12] + '…' for s in leaked]}"
    assert not JWT.search(log), "a JWT in the log"


@pytest.mark.parametrize("method,path,body,expected", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_authorization_matrix(app, world, method, path, body, expected):
    for who, status in expected.items():
        response = world[who].request(method, app.url + fill(path, world), json=fill(body, world))
        assert response.status_code == status, f"{who}: {response.status_code} {response.text}"
        if status >= 400:
            assert list(response.json()) == ["errors"]


def test_nobody_sees_someone_elses_orders_in_their_list(app, world):
    others = world["other"].get(f"{app.url}/api/orders").json()
    assert world["order"]["id"] not in [o["id"] for o in others]
    me = world["other"].get(f"{app.url}/api/users/currentuser").json()["currentUser"]
    assert me["id"] == world["other"].user["id"]


def test_auth_cookies_are_httponly_lax_and_scoped_to_the_site(app):
    response = requests.post(f"{app.url}/api/users/signup",
                             json={"email": f"cookies-{uuid.uuid4().hex[:6]}@example.com", "password": "secret-pass"})
    headers = response.raw.headers.getlist("Set-Cookie")
    assert {h.split("=", 1)[0] for h in headers} == {"ticketing_access", "ticketing_refresh"}
    for header in headers:
        attributes = {a.strip().split("=", 1)[0].lower() for a in header.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= attributes and "domain" not in attributes, header
        assert "SameSite=Lax" in header and "Path=/" in header
        assert "secure" not in attributes  # plain http in development; production sets Secure (unit-tested)
    page = requests.get(f"{app.url}/auth/signin")
    frontend_cookie = page.raw.headers.getlist("Set-Cookie")
    for header in frontend_cookie:
        assert "HttpOnly" in header and "SameSite=Lax" in header


def test_no_stored_xss_in_any_page_or_email(app):
    seller, buyer = signup(app, "xss-seller"), signup(app, "xss-buyer")
    ticket = list_ticket(app, seller, title=XSS)
    placed = order(app, buyer, ticket["id"]).json()
    paid = buyer.post(f"{app.url}/api/payments", json={"token": "tok_visa", "orderId": placed["id"]})
    assert paid.status_code == 201, paid.text
    pages = [(requests, "/"), (requests, f"/tickets/{ticket['id']}"), (seller, f"/tickets/{ticket['id']}/edit"),
             (buyer, "/orders"), (buyer, f"/orders/{placed['id']}")]
    for client, path in pages:
        page = client.get(app.url + path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "onerror=alert" not in page.text.replace("onerror=alert(1)&gt;", "")
        assert "&lt;script&gt;" in page.text or path == "/", path  # the title is shown, escaped
    mail = Path(app.env["MAIL_OUTBOX_DIR"]) / f"{placed['id']}.eml"
    wait_for(mail.exists, timeout=10, what="the confirmation email")
    raw = mail.read_text(errors="replace")
    import email
    import email.policy

    message = email.message_from_string(raw, policy=email.policy.default)
    body = message.get_body(("html",)).get_content()
    assert "<script>" not in body and html.escape(XSS) in body


def test_the_log_of_the_whole_run_holds_no_password_token_card_token_or_key(app, world):
    """Runs last in this module: everything above (and the other e2e modules on this app) is in the log."""
    time.sleep(0.5)  # the last lines reach the log file
    log = app.log()
    secrets = {"secret-pass", "fuzz-password", "tok_visa", "tok_chargeDeclined"}
    for session in (world["owner"], world["other"]):
        secrets.update(v for v in session.cookies.values() if v)
    for name in ("JWT_PRIVATE_KEY_FILE", "SECRET_KEY_FILE"):
        path = app.env.get(name) or str(Path(app.env["VAR_DIR"]) / "keys" / Path(
            {"JWT_PRIVATE_KEY_FILE": "jwt-private.pem", "SECRET_KEY_FILE": "secret-key"}[name]))
        content = Path(path).read_text().strip()
        secrets.update(line for line in content.splitlines() if len(line) > 20 and "-----" not in line)
    assert_no_leak(log, secrets)


def test_with_real_processors_the_log_holds_no_api_key_card_token_password_or_token(app_factory):
    """Stripe and SendGrid (fakes that check the keys), every component at DEBUG: a purchase, a declined
    card, a failed sign-in, a refresh; the API keys, card tokens, passwords and tokens stay out of the log."""
    stripe, sendgrid = FakeStripe(), FakeSendGrid()
    stripe_key, sendgrid_key = f"sk_test_{uuid.uuid4().hex}", f"SG.{uuid.uuid4().hex}.{uuid.uuid4().hex}"
    try:
        live = app_factory(STRIPE_KEY=stripe_key, STRIPE_API_BASE=stripe.url, SENDGRID_API_KEY=sendgrid_key,
                           SENDGRID_HOST=sendgrid.url, LOG_LEVEL="DEBUG")
        seller, buyer = signup(live, "keys-seller"), signup(live, "keys-buyer")
        declined = order(live, buyer, list_ticket(live, seller, title="Declined")["id"]).json()
        assert buyer.post(f"{live.url}/api/payments",
                          json={"token": "tok_chargeDeclined", "orderId": declined["id"]}).status_code == 402
        placed = order(live, buyer, list_ticket(live, seller, title="Paid")["id"]).json()
        paid = buyer.post(f"{live.url}/api/payments", json={"token": "tok_visa", "orderId": placed["id"]})
        assert paid.status_code == 201, paid.text
        wrong = requests.post(f"{live.url}/api/users/signin",
                              json={"email": buyer.get(f"{live.url}/api/users/currentuser").json()["currentUser"]
                                    ["email"], "password": "not-my-password"})
        assert wrong.status_code == 400
        assert buyer.post(f"{live.url}/api/users/refresh", json={}).status_code == 200
        wait_for(lambda: sendgrid.mails, timeout=10, what="the confirmation through SendGrid")
        assert any(r["headers"].get("authorization") == f"Bearer {stripe_key}" for r in stripe.requests)
        assert any(r["headers"].get("authorization") == f"Bearer {sendgrid_key}" for r in sendgrid.requests)
        time.sleep(0.5)  # the last lines reach the log file
        log = live.log()
        assert "DEBUG" in log
        secrets = {stripe_key, sendgrid_key, "tok_visa", "tok_chargeDeclined", "secret-pass", "not-my-password",
                   *(v for session in (seller, buyer) for v in session.cookies.values() if v)}
        assert_no_leak(log, secrets)
    finally:
        stripe.stop()
        sendgrid.stop()
