"""Helpers of the end-to-end tests: users, buyers, sellers, and a tap on the app's events."""
from __future__ import annotations

import time
import uuid
from urllib.parse import unquote, urlparse

import eventlet
import requests
from kombu import Connection, Exchange, Queue

from tests.support.waiting import wait_for  # noqa: F401 (re-exported)


def signup_as(app, email, password="secret-pass") -> requests.Session:
    """A browser-like session signed up as ``email``."""
    session = requests.Session()
    response = session.post(f"{app.url}/api/users/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return session


def signup(app, label="user"):
    session = requests.Session()
    email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
    response = session.post(f"{app.url}/api/users/signup", json={"email": email, "password": "secret-pass"})
    assert response.status_code == 201, response.text
    session.user = response.json()
    return session


def list_ticket(app, seller, title="Concert", price=25.5) -> dict:
    response = seller.post(f"{app.url}/api/tickets", json={"title": title, "price": price})
    assert response.status_code == 201, response.text
    return response.json()


def order(app, buyer, ticket_id, timeout=5.0) -> requests.Response:
    """POST /api/orders, waiting out the moment before orders' replica has heard of a new ticket."""
    deadline = time.monotonic() + timeout
    while True:
        response = buyer.post(f"{app.url}/api/orders", json={"ticketId": ticket_id})
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def on_sale(app, ticket_id) -> bool:
    return ticket_id in [t["id"] for t in requests.get(f"{app.url}/api/tickets", params={"limit": 100}).json()]


def vhost_of(amqp_uri: str) -> str:
    return unquote(urlparse(amqp_uri).path[1:])



def publish_event(amqp_uri: str, service: str, name: str, payload) -> None:
    """Publish ``payload`` as event ``name`` of ``service`` (on ``<service>.events``), as the service
    would, or as a broken one would: the payload is sent as it is, valid or not."""
    exchange = Exchange(f"{service}.events", type="topic", durable=True)
    with Connection(amqp_uri) as connection:
        connection.Producer().publish(payload, exchange=exchange, routing_key=name, declare=[exchange],
                                      serializer="json")


class EventTap:
    """Binds a private queue to services' event exchanges and records (arrival time, name, payload)."""

    def __init__(self, amqp_uri: str, bindings: dict[str, list[str]]):
        self.seen: list[tuple[float, str, dict]] = []
        self.connection = Connection(amqp_uri)
        self.queue = Queue(f"test-tap-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True, bindings=[])
        channel = self.connection.channel()
        self.queue = self.queue(channel)
        self.queue.declare()
        for service, names in bindings.items():
            exchange = Exchange(f"{service}.events", type="topic", durable=True)
            exchange(channel).declare()
            for name in names:
                self.queue.bind_to(exchange=exchange.name, routing_key=name)
        self._stopping = False
        self._consumer = self.connection.Consumer([self.queue], callbacks=[self._on_message], accept=["json"])
        self._consumer.consume()
        self._thread = eventlet.spawn(self._drain)

    def _on_message(self, body, message):
        self.seen.append((time.time(), message.delivery_info["routing_key"], body))
        message.ack()

    def _drain(self):
        while not self._stopping:
            try:
                self.connection.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                if self._stopping:
                    return
                raise

    def events(self, name, **match):
        return [(at, payload) for at, n, payload in self.seen
                if n == name and all(payload.get(k) == v for k, v in match.items())]

    def wait(self, name, timeout=10.0, **match):
        return wait_for(lambda: self.events(name, **match), timeout=timeout)

    def close(self):
        self._stopping = True
        self._thread.wait()
        self.connection.release()
