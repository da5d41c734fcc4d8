"""The frontend tests' fake gateway (tests/unit/frontend/frontend_fake_gateway.py) against the real gateway.

What the gateway decides by itself (cookies, routes, body validation, guards,
401/404/415 and their bodies) must come out of the fake exactly as out of the
real one; tests/e2e/test_fake_gateway_contract.py does the same for what the
services decide.
"""
import pytest

from gateway.auth import ACCESS_COOKIE, REFRESH_COOKIE
from tests.unit.frontend.frontend_fake_gateway import FakeGatewayState, create_fake_gateway

TICKET, ORDER = "c" * 32, "d" * 32


@pytest.fixture
def fake():
    state = FakeGatewayState()
    return state, create_fake_gateway(state).test_client()


def cookie_names(response) -> dict[str, bool]:
    """Each cookie the response sets -> whether it deletes it."""
    names = {}
    for header in response.headers.getlist("Set-Cookie"):
        name = header.split("=", 1)[0]
        names[name] = "Max-Age=0" in header or "expires=Thu, 01 Jan 1970" in header
    return names


def test_the_fake_sets_and_clears_the_real_cookies(client, rpc, fake):
    _, fake_client = fake
    rpc.auth.signup = lambda email, password, ip: {
        "user": {"id": "a" * 32, "email": email}, "accessToken": "access", "refreshToken": "refresh"}
    rpc.auth.signout = lambda token: None
    body = {"email": "ann@example.com", "password": "secret-pass"}
    real, faked = client.post("/api/users/signup", json=body), fake_client.post("/api/users/signup", json=body)
    assert real.status_code == faked.status_code == 201
    assert cookie_names(real) == cookie_names(faked) == {ACCESS_COOKIE: False, REFRESH_COOKIE: False}
    assert set(real.get_json()) == set(faked.get_json()) == {"id", "email"}
    real, faked = client.post("/api/users/signout", json={}), fake_client.post("/api/users/signout", json={})
    assert real.status_code == faked.status_code == 200 and real.get_json() == faked.get_json()
    assert cookie_names(real) == cookie_names(faked) == {ACCESS_COOKIE: True, REFRESH_COOKIE: True}


def test_every_route_of_the_fake_is_a_route_of_the_gateway(app, fake):
    def routes(flask_app):
        return {(method, rule.rule) for rule in flask_app.url_map.iter_rules() if rule.rule.startswith("/api")
                for method in rule.methods - {"HEAD", "OPTIONS"}}

    _, fake_client = fake
    assert routes(fake_client.application) <= routes(app)


TOO_LONG = "x" * 501
#: (method, path, what is sent, signed in): answered by the gateway alone, before any service is asked
REQUESTS = [
    ("post", "/api/users/signup", {"json": {}}, False),
    ("post", "/api/users/signup", {"json": {"email": "not-an-email", "password": "short"}}, False),
    ("post", "/api/users/signup", {"json": {"email": "ann@example.com", "password": "p" * 65}}, False),
    ("post", "/api/users/signup", {"json": [1]}, False),
    ("post", "/api/users/signup", {"data": "{", "content_type": "application/json"}, False),
    ("post", "/api/users/signup", {"data": "email=a", "content_type": "application/x-www-form-urlencoded"}, False),
    ("post", "/api/users/signin", {"json": {"email": "", "password": ""}}, False),
    ("post", "/api/users/refresh", {"json": {}}, False),
    ("post", "/api/tickets", {"json": {"title": "Show", "price": 10}}, False),
    ("post", "/api/tickets", {"json": {}}, True),
    ("post", "/api/tickets", {"json": {"title": " ", "price": "10"}}, True),
    ("post", "/api/tickets", {"json": {"title": "x" * 201, "price": 0}}, True),
    ("post", "/api/tickets", {"json": {"title": "Show", "price": 1.234}}, True),
    ("post", "/api/tickets", {"json": {"title": "Show\u202e", "price": 1000001}}, True),
    ("post", "/api/tickets", {"data": "title", "content_type": "text/plain"}, True),
    ("post", "/api/tickets", {"json": {"title": "Show", "price": 1}, "headers": {"Origin": "https://evil.example"}},
     True),
    ("put", f"/api/tickets/{TICKET}", {"json": {"title": "", "price": -1}}, True),
    ("put", "/api/tickets/not-an-id", {"json": {"title": "Show", "price": 1}}, True),
    ("get", "/api/tickets/not-an-id", {}, False),
    ("get", "/api/tickets?limit=0", {}, False),
    ("get", "/api/tickets?limit=101", {}, False),
    ("get", "/api/orders", {}, False),
    ("get", "/api/orders/not-an-id", {}, True),
    ("post", "/api/orders", {"json": {"ticketId": TICKET}}, False),
    ("post", "/api/orders", {"json": {}}, True),
    ("post", "/api/orders", {"json": {"ticketId": "nope"}}, True),
    ("delete", f"/api/orders/{ORDER}", {}, False),
    ("delete", "/api/orders/not-an-id", {}, True),
    ("post", "/api/payments", {"json": {"token": "tok_visa", "orderId": ORDER}}, False),
    ("post", "/api/payments", {"json": {}}, True),
    ("post", "/api/payments", {"json": {"token": TOO_LONG, "orderId": "x"}}, True),
    ("get", "/api/nothing-here", {}, False),
    ("patch", "/api/tickets", {"json": {}}, False),
]


@pytest.mark.parametrize("method, path, sent, needs_user", REQUESTS)
def test_what_the_gateway_answers_alone_the_fake_answers_alike(client, signed_in, rpc, fake,
                                                              method, path, sent, needs_user):
    state, fake_client = fake
    rpc.tickets.get_ticket = lambda ticket_id: pytest.fail("the service was asked")  # looked up before the id check
    if needs_user:
        signed_in()
        user = state.add_user("ann@example.com")
        state.access["fake-access"] = (user["id"], float("inf"))
        fake_client.set_cookie(ACCESS_COOKIE, "fake-access")
    real = getattr(client, method)(path, **sent)
    faked = getattr(fake_client, method)(path, **sent)
    assert rpc.calls == []  # the gateway answered alone
    assert (faked.status_code, faked.get_json()) == (real.status_code, real.get_json())
    assert real.status_code >= 400
