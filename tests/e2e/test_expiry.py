"""Expiry end to end through ``ticketing up`` with a 3 s window, including a restart of the expiration service."""
import time
from datetime import datetime, timedelta

import pytest
from kombu import Connection, Exchange

from services.common import events
from tests.e2e.orders_support import EventTap, list_ticket, on_sale, order, signup, wait_for

pytestmark = pytest.mark.e2e

WINDOW = 3
#: nameko's queue of the expiration service's order:created handler
EXPIRATION_INBOX = "evt-orders-order:created--expiration.on_order_created"


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory(EXPIRATION_WINDOW_SECONDS=str(WINDOW))


@pytest.fixture
def tap(app):
    tap = EventTap(app.env["AMQP_URI"], {"orders": ["order:cancelled"], "expiration": ["expiration:complete"]})
    yield tap
    tap.close()


def deadline(order_json) -> float:
    return datetime.fromisoformat(order_json["expiresAt"].replace("Z", "+00:00")).timestamp()


def test_an_unpaid_order_is_cancelled_within_a_second_of_expiry_and_the_ticket_goes_back_on_sale(app, tap):
    seller, alice, bob = signup(app, "seller"), signup(app, "alice"), signup(app, "bob")
    ticket = list_ticket(app, seller)
    created = order(app, alice, ticket["id"])
    assert created.status_code == 201, created.text
    alices = created.json()
    assert WINDOW - 1 < deadline(alices) - time.time() <= WINDOW
    wait_for(lambda: not on_sale(app, ticket["id"]))

    (cancelled_at, event), = tap.wait("order:cancelled", timeout=WINDOW + 3, id=alices["id"])
    assert 0 <= cancelled_at - deadline(alices) < 1.0, cancelled_at - deadline(alices)
    assert alice.get(f"{app.url}/api/orders/{alices['id']}").json()["status"] == "cancelled"
    wait_for(lambda: on_sale(app, ticket["id"]), timeout=3)
    bobs = order(app, bob, ticket["id"])
    assert bobs.status_code == 201 and bobs.json()["userId"] == bob.user["id"]


def test_a_paid_or_held_order_does_not_expire(app, tap):
    """payments holds the order (created -> awaiting:payment); expiry must then leave it alone."""
    from nameko.standalone.rpc import ClusterRpcProxy

    seller, alice = signup(app, "seller"), signup(app, "alice")
    ticket = list_ticket(app, seller)
    alices = order(app, alice, ticket["id"]).json()
    with ClusterRpcProxy({"AMQP_URI": app.env["AMQP_URI"], "serializer": "json"}) as rpc:
        rpc.orders.hold_for_payment(alices["id"], alice.user["id"], "1" * 32)  # payments' attempt "1..."
        tap.wait("expiration:complete", timeout=WINDOW + 3, orderId=alices["id"])
        time.sleep(0.3)
        assert rpc.orders.get_order(alices["id"])["status"] == "awaiting:payment"
        # the charge failed after expiry: releasing the hold cancels it
        assert rpc.orders.release_hold(alices["id"], "1" * 32)["status"] == "cancelled"
    tap.wait("order:cancelled", id=alices["id"])


def test_pending_expiries_survive_a_restart_of_the_expiration_service(app, tap):
    seller = signup(app, "seller")
    buyers = [signup(app, f"buyer{i}") for i in range(2)]
    real = [order(app, b, list_ticket(app, seller)["id"]).json() for b in buyers]
    # plus expiries of our own choosing straight into the service's inbox: before, during and after the outage
    now = events.utcnow()
    direct = {f"{n:032x}": now + timedelta(seconds=s) for n, s in enumerate((1, 2, 4, 6, 8), start=1)}
    with Connection(app.env["AMQP_URI"]) as connection:
        producer = connection.Producer(serializer="json")
        for order_id, at in direct.items():
            payload = events.new_event(events.ORDER_CREATED, id=order_id, version=0, status="created",
                                       userId="a" * 32, userEmail="a@example.com", expiresAt=events.isoformat(at),
                                       ticket={"id": "b" * 32, "price": "1.00"})
            producer.publish(payload, exchange=Exchange(""), routing_key=EXPIRATION_INBOX, delivery_mode=2)

    killed = set(app.component_pids("expiration"))
    app.kill_component("expiration")
    wait_for(lambda: not killed & set(app.component_pids("expiration")), timeout=5)
    # back = its readiness answers again, which includes its consumers being up
    back = wait_for(lambda: app.ready("expiration") and time.time(), timeout=40, interval=0.02)

    late = {}
    for order_id, at in direct.items():
        # A kill -9 between publishing a batch's expiration:complete and acking its messages sends
        # them again after the restart (at least once, as documented; orders ignores the second):
        # the first arrival is the one that counts.
        arrived = min(at_ for at_, _ in tap.wait("expiration:complete", timeout=15, orderId=order_id))
        late[order_id] = (arrived - at.timestamp(), arrived - max(at.timestamp(), back))
    for o in real:
        # the effect happens once, whatever expiration sent twice
        (arrived, _), = tap.wait("order:cancelled", timeout=15, id=o["id"])
        late[o["id"]] = (arrived - deadline(o), arrived - max(deadline(o), back))
    # never early; on time, or within a second of the service being back
    assert all(early >= -0.01 and after_restart < 1.0 for early, after_restart in late.values()), late
    for o, buyer in zip(real, buyers):
        assert buyer.get(f"{app.url}/api/orders/{o['id']}").json()["status"] == "cancelled"
