"""Operating the running app: correlated logs, expected errors, metrics that move, `ticketing status`.

Runs against the app of the expiry tests (a 3 s window), so an order expires within the test.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from kombu import Connection, Exchange

from services.common import events

from tests.e2e.orders_support import list_ticket, order, publish_event, signup, wait_for
from tests.integration.test_expiration_service import order_created

pytestmark = pytest.mark.e2e

WINDOW = 3
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory(EXPIRATION_WINDOW_SECONDS=str(WINDOW))


def lines_with(app, cid: str) -> dict[str, list[str]]:
    """The log lines (as `ticketing up` prints them for people) carrying ``cid``, by component."""
    found: dict[str, list[str]] = {}
    for line in app.log().splitlines():
        who, sep, rest = line.partition(" | ")
        if sep and f"cid={cid}" in rest:
            found.setdefault(who.strip(), []).append(rest)
    return found


def test_one_correlation_id_from_the_request_to_the_expiry(app):
    seller, buyer = signup(app, "seller"), signup(app, "buyer")
    ticket = list_ticket(app, seller)
    cid = "test-" + uuid.uuid4().hex
    buyer.headers["X-Request-ID"] = cid
    response = order(app, buyer, ticket["id"])
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == cid
    order_id = response.json()["id"]

    def every_component():
        found = lines_with(app, cid)
        return found if {"gateway", "orders", "tickets", "expiration"} <= set(found) else None

    found = wait_for(every_component, timeout=15, what="lines with the correlation id in every component")
    assert any("POST /api/orders -> 201" in line for line in found["gateway"])
    assert any(f"order {order_id} created" in line for line in found["orders"])
    assert any(f"ticket {ticket['id']} reserved by order {order_id}" in line for line in found["tickets"])
    # the expiry, seconds later and through RabbitMQ's holding queues, still carries it: the log says why
    wait_for(lambda: any(f"order {order_id} cancelled: its payment window ran out" in line
                         for line in lines_with(app, cid).get("orders", [])),
             timeout=WINDOW + 15, what="the expiry's cancellation logged with the request's id")
    wait_for(lambda: any("released" in line for line in lines_with(app, cid).get("tickets", [])),
             timeout=10, what="the ticket's release logged with the request's id")
    # a line that speaks of the order or the ticket names it in its ids too (a log store finds it by order_id)
    for component, lines in lines_with(app, cid).items():
        for line in lines:
            message = line.partition("  [")[0]
            if f"order {order_id}" in message:
                assert f"order={order_id}" in line, (component, line)
            if f"ticket {ticket['id']}" in message:
                assert f"ticket={ticket['id']}" in line, (component, line)


def test_every_component_writes_one_json_object_per_line(app):
    """`ticketing up` shows a JSON line as `name | hh:mm:ss.mmm LEVEL message`, its further lines
    indented below; anything a component printed otherwise would show as it is."""
    assert requests.get(f"{app.url}/", timeout=10).status_code == 200  # the frontend logs its access line
    formatted = re.compile(r"\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
    seen = set()

    def check():
        for line in app.log().splitlines():
            who, sep, rest = line.partition(" | ")
            who = who.strip()
            assert sep, f"a line without its component: {line!r}"
            if who == "ticketing":  # the supervisor's own lines
                continue
            assert formatted.match(rest) or rest.startswith("    "), f"not a JSON line: {line!r}"
            seen.add(who)
        return seen >= {"auth", "tickets", "orders", "expiration", "payments", "confirmation", "gateway", "frontend"}

    wait_for(check, timeout=10, what=f"lines of every component (seen: {seen})")


def test_a_request_without_an_id_gets_one_and_a_bad_one_is_replaced(app):
    made = requests.get(f"{app.url}/api/tickets")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    replaced = requests.get(f"{app.url}/api/tickets", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["X-Request-ID"] != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])


def test_expected_errors_are_info_lines_without_a_traceback(app):
    seller = signup(app, "seller")
    ticket = list_ticket(app, seller)
    cid = "test-" + uuid.uuid4().hex
    seller.headers["X-Request-ID"] = cid
    response = order(app, seller, ticket["id"])  # one's own ticket: 409
    assert response.status_code == 409
    found = wait_for(lambda: lines_with(app, cid).get("orders"), what="the orders service's line")
    assert any("orders.create_order answered 409: You cannot buy your own ticket" in line and " INFO " in line
               for line in found), found
    lines = app.log().splitlines()
    for n, line in enumerate(lines):
        if f"cid={cid}" in line:
            level = line.partition(" | ")[2].split()[1]
            assert level == "INFO", line
            assert n + 1 == len(lines) or "Traceback" not in lines[n + 1], lines[n:n + 3]


def scrape(url: str) -> dict[str, float]:
    """A /metrics page as {sample with labels: value}."""
    samples = {}
    for line in requests.get(url, timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, number in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(have.get(k) == v for k, v in labels.items()):
            total += number
    return total


def state(app) -> dict:
    return json.loads((Path(app.env["VAR_DIR"]).resolve() / "ticketing-up.json").read_text())["components"]


def test_metrics_exist_and_move(app):
    urls = {name: c["metrics"] for name, c in state(app).items()}
    before = {name: scrape(url) for name, url in urls.items()}
    assert requests.get(f"{app.url}/", timeout=10).status_code == 200  # a page of the frontend
    seller, buyer = signup(app, "seller"), signup(app, "buyer")
    expiring = list_ticket(app, seller)
    paid = list_ticket(app, seller)
    declined = list_ticket(app, seller)
    expiring_order = order(app, buyer, expiring["id"]).json()
    paid_order = order(app, buyer, paid["id"]).json()
    declined_order = order(app, buyer, declined["id"]).json()
    # a malformed event fails its handlers and is parked at once (retrying cannot mend it); an early
    # one (v1 of a ticket orders has never seen) is sent back for another try
    with Connection(app.env["AMQP_URI"]) as connection:
        exchange = Exchange("orders.events", type="topic", durable=True)
        connection.Producer().publish({"eventId": uuid.uuid4().hex}, exchange=exchange, routing_key="order:created",
                                      declare=[exchange], serializer="json")
        early = events.new_event(events.TICKET_UPDATED, id=uuid.uuid4().hex, version=1, title="Early",
                                 price="1.00", userId=uuid.uuid4().hex, orderId=None)
        tickets_exchange = Exchange("tickets.events", type="topic", durable=True)
        connection.Producer().publish(early, exchange=tickets_exchange, routing_key=events.TICKET_UPDATED,
                                      declare=[tickets_exchange], serializer="json")
        # two expiries an hour away, handed to expiration alone (no order behind them: nobody else must see
        # them), wait in a holding queue for the whole test: the pending-expirations gauge must count them
        # (two: more than the broker's figures, up to 5 s old, may still show of an earlier test's expiry)
        for _ in range(2):
            connection.Producer().publish(
                order_created(uuid.uuid4().hex, events.utcnow() + timedelta(hours=1)), exchange="",
                routing_key=f"evt-orders-{events.ORDER_CREATED}--expiration.on_order_created", serializer="json")
    assert buyer.post(f"{app.url}/api/payments", json={"token": "tok_visa", "orderId": paid_order["id"]}
                      ).status_code == 201
    assert buyer.post(f"{app.url}/api/payments", json={"token": "tok_chargeDeclined",
                                                       "orderId": declined_order["id"]}).status_code == 402

    def moved(name, metric, **labels):
        return value(scrape(urls[name]), metric, **labels) > value(before[name], metric, **labels)

    checks = [
        ("web", "ticketing_http_request_duration_seconds_count",
         {"component": "gateway", "route": "/api/orders", "method": "POST", "status": "201"}),
        ("web", "ticketing_http_request_duration_seconds_count", {"component": "frontend", "route": "/", "method": "GET"}),
        ("orders", "ticketing_rpc_duration_seconds_count", {"method": "create_order", "outcome": "ok"}),
        ("orders", "ticketing_events_published_total", {"event": "order:created"}),
        ("tickets", "ticketing_events_consumed_total", {"event": "order:created", "outcome": "ok"}),
        ("expiration", "ticketing_events_consumed_total", {"event": "order:created"}),
        ("orders", "ticketing_order_transitions_total", {"status": "complete", "reason": "paid"}),
        ("payments", "ticketing_payments_total", {"outcome": "paid"}),
        ("payments", "ticketing_payments_total", {"outcome": "declined"}),
        ("confirmation", "ticketing_emails_total", {"outcome": "sent"}),
        ("expiration", "ticketing_events_published_total", {"event": "expiration:complete"}),
        ("orders", "ticketing_order_transitions_total", {"status": "cancelled", "reason": "expired"}),
        ("orders", "ticketing_orders", {"status": "complete"}),
        ("orders", "ticketing_orders", {"status": "cancelled"}),
        ("tickets", "ticketing_events_consumed_total", {"event": "order:created", "outcome": "failed"}),
        ("tickets", "ticketing_events_parked_total", {}),
        ("orders", "ticketing_event_retries_total", {}),
        # the parked message waits in tickets' parked queue (the broker's figures lag up to 5 s)
        ("expiration", "ticketing_pending_expirations", {"queue_kind": "holding"}),
        ("expiration", "ticketing_queue_messages", {"queue": "evt-orders-order:created--tickets.on_order_created.parked"}),
    ]
    for name, metric, labels in checks:
        wait_for(lambda: moved(name, metric, **labels), timeout=WINDOW + 15, what=f"{name} {metric} {labels}")

    assert 'ticketing_pending_expirations{queue_kind="due"}' in scrape(urls["expiration"])
    assert expiring_order["id"]


def test_ticketing_status_reports_readiness_queues_and_errors(app):
    """A poison event (its version is no number) is parked by orders: `ticketing status` shows every
    component ready, the parked message among the queue depths, and orders' error line about it."""
    marker = uuid.uuid4().hex
    publish_event(app.env["AMQP_URI"], "tickets", events.TICKET_UPDATED,
                  {"eventId": marker, "id": marker, "version": "not a number"})
    parked_queue = "evt-tickets-ticket:updated--orders.on_ticket_updated.parked"

    def status(*args):
        return subprocess.run([sys.executable, "-m", "ticketing.cli", "status", *args], env=app.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def parked_and_reported():
        result = status("--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        errors = [e["message"] for e in report["components"]["orders"]["errors"]]
        shown = (report["queues"]["parked"] or {}).get(parked_queue, 0) >= 1 and any(marker in m for m in errors)
        return report if shown else None

    report = wait_for(parked_and_reported, timeout=20, what="the parked message and its error in the status")
    assert set(report["components"]) == {"auth", "tickets", "orders", "expiration", "payments", "confirmation", "web"}
    assert all(c["ready"] for c in report["components"].values())
    assert report["queues"]["expirations"]["due"] >= 0
    assert report["queues"]["expirations"]["holding"] >= 0
    human = status()
    assert human.returncode == 0
    assert "pending expirations:" in human.stdout
    assert f"  {parked_queue}: " in human.stdout.split("parked messages:", 1)[1]
    errors = human.stdout.split("last errors:", 1)[1]
    assert "orders ERROR parking event of " + parked_queue[:-len(".parked")] in errors and marker in errors, errors
