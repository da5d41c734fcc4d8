"""The frontend tests' fake gateway against the real app: one journey through both, the same answers.

A buyer, a seller and a third user go through sign-up, listing, reserving, a
declined and a paying card, and every refusal on the way. For each step the
status, the error bodies (messages and fields), the cookies set or cleared and
the shape of what came back must be the same from the fake
(tests/unit/frontend/frontend_fake_gateway.py) as from ``ticketing up``: a fake
that drifts from the real gateway fails here, not in production.
"""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.unit.frontend.frontend_fake_gateway import FakeGatewayState, ServedApp, create_fake_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture
def fake_url():
    served = ServedApp(create_fake_gateway(FakeGatewayState()))
    yield served.url
    served.stop()


class Journey:
    def __init__(self, url: str):
        self.url = url
        self.seen: list[tuple] = []
        self.suffix = uuid.uuid4().hex[:8]

    def call(self, step: str, session: requests.Session, method: str, path: str, **kwargs) -> requests.Response:
        response = session.request(method, f"{self.url}{path}", timeout=10, **kwargs)
        self.seen.append((step, *observe(response)))
        return response

    def until(self, step, session, method, path, done, timeout=10.0, **kwargs) -> requests.Response:
        """The call again until ``done(response)``: what the services do after answering takes a moment."""
        deadline = time.monotonic() + timeout
        while True:
            response = session.request(method, f"{self.url}{path}", timeout=10, **kwargs)
            if done(response) or time.monotonic() > deadline:
                self.seen.append((step, *observe(response)))
                return response
            time.sleep(0.1)


def observe(response: requests.Response) -> tuple:
    cookies = sorted((header.split("=", 1)[0], "Max-Age=0" in header or "01 Jan 1970" in header)
                     for header in response.raw.headers.getlist("Set-Cookie"))
    body = response.json() if response.content else None
    if isinstance(body, dict) and "errors" in body:
        shape = body  # every message and field, exactly
    else:
        shape = outline(body)
    return response.status_code, tuple(cookies), shape


def outline(value):
    """Keys and JSON types, and the values that do not differ from one run to the next."""
    if isinstance(value, dict):
        return {key: (item if key in ("status", "title", "price", "version") else outline(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [outline(item) for item in value]
    return type(value).__name__


def journey(url: str) -> list[tuple]:
    j = Journey(url)
    seller, buyer, other, anonymous = (requests.Session() for _ in range(4))
    password = "secret-pass"
    emails = {name: f"{name}-{j.suffix}@example.com" for name in ("seller", "buyer", "other")}

    j.call("sign-up, bad password", seller, "post", "/api/users/signup",
           json={"email": emails["seller"], "password": "short"})
    j.call("sign-up", seller, "post", "/api/users/signup", json={"email": emails["seller"], "password": password})
    j.call("sign-up again", anonymous, "post", "/api/users/signup",
           json={"email": emails["seller"], "password": password})
    j.call("sign-in, wrong password", anonymous, "post", "/api/users/signin",
           json={"email": emails["seller"], "password": "wrong-pass"})
    j.call("current user", seller, "get", "/api/users/currentuser")
    j.call("current user, signed out", anonymous, "get", "/api/users/currentuser")
    j.call("sell, signed out", anonymous, "post", "/api/tickets", json={"title": "Show", "price": 25.5})
    j.call("sell, bad fields", seller, "post", "/api/tickets", json={"title": "", "price": 0})
    ticket = j.call("sell", seller, "post", "/api/tickets", json={"title": "Show", "price": 25.5}).json()
    j.call("no such ticket", anonymous, "get", f"/api/tickets/{uuid.uuid4().hex}")
    j.call("a ticket", anonymous, "get", f"/api/tickets/{ticket['id']}")
    for name in ("buyer", "other"):
        session = buyer if name == "buyer" else other
        j.call(f"sign-up {name}", session, "post", "/api/users/signup", json={"email": emails[name], "password": password})
    j.call("edit someone else's ticket", buyer, "put", f"/api/tickets/{ticket['id']}",
           json={"title": "Mine", "price": 1})
    j.until("buy your own ticket", seller, "post", "/api/orders", lambda r: r.status_code != 404,
            json={"ticketId": ticket["id"]})
    order = j.call("reserve", buyer, "post", "/api/orders", json={"ticketId": ticket["id"]}).json()
    j.call("reserve a reserved ticket", other, "post", "/api/orders", json={"ticketId": ticket["id"]})
    j.until("a reserved ticket", anonymous, "get", f"/api/tickets/{ticket['id']}",
            lambda r: r.json().get("orderId") is not None)
    j.call("edit a reserved ticket", seller, "put", f"/api/tickets/{ticket['id']}",
           json={"title": "Show", "price": 30})
    j.call("someone else's order", other, "get", f"/api/orders/{order['id']}")
    j.call("pay someone else's order", other, "post", "/api/payments",
           json={"token": "tok_visa", "orderId": order["id"]})
    j.call("declined card", buyer, "post", "/api/payments", json={"token": "tok_chargeDeclined", "orderId": order["id"]})
    j.call("unknown card", buyer, "post", "/api/payments", json={"token": "tok_bogus", "orderId": order["id"]})
    j.call("pay", buyer, "post", "/api/payments", json={"token": "tok_visa", "orderId": order["id"]})
    j.until("paid", buyer, "get", f"/api/orders/{order['id']}", lambda r: r.json().get("status") == "complete")
    j.call("pay again", buyer, "post", "/api/payments", json={"token": "tok_visa", "orderId": order["id"]})
    j.call("cancel a paid order", buyer, "delete", f"/api/orders/{order['id']}", headers={})
    j.call("my orders", buyer, "get", "/api/orders")
    j.call("sign out", buyer, "post", "/api/users/signout", json={})
    j.call("refresh, signed out", anonymous, "post", "/api/users/refresh", json={})
    return j.seen


def test_the_fake_gateway_answers_the_journey_as_the_real_one(app, fake_url):
    real, fake = journey(app.url), journey(fake_url)
    assert [step for step, *_ in fake] == [step for step, *_ in real]
    differences = [(step, answer, faked) for (step, *answer), (_, *faked) in zip(real, fake) if answer != faked]
    assert not differences, "\n".join(f"{step}:\n  real {answer}\n  fake {faked}" for step, answer, faked in differences)
