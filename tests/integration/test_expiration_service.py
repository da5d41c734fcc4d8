"""The expiration service in a real container: expiries of mixed lengths each arrive on time."""
import time
from datetime import timedelta

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from services.common import events
from services.expiration.service import ExpirationService
from tests.e2e.orders_support import EventTap, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def expiration(container_factory, rabbit_config):
    tap = EventTap(rabbit_config["AMQP_URI"], {"expiration": ["expiration:complete"]})
    container = container_factory(ExpirationService, {**rabbit_config, "serializer": "json",
                                                      "WEB_SERVER_ADDRESS": "127.0.0.1:0"})
    container.start()
    yield event_dispatcher(rabbit_config), tap
    tap.close()


def order_created(order_id, expires_at):
    return events.new_event(events.ORDER_CREATED, id=order_id, version=0, status="created", userId="a" * 32,
                            userEmail="a@example.com", expiresAt=events.isoformat(expires_at),
                            ticket={"id": "b" * 32, "price": "10.00"})


def test_mixed_windows_expire_at_their_own_times(expiration):
    dispatch, tap = expiration
    deadlines = {}
    for n in range(10):  # 1 s and 5 s windows, interleaved
        order_id = f"{n:032x}"
        deadlines[order_id] = events.utcnow() + timedelta(seconds=1 if n % 2 == 0 else 5)
        dispatch("orders", events.ORDER_CREATED, order_created(order_id, deadlines[order_id]))
        eventlet.sleep(0.02)
    wait_for(lambda: len(tap.events("expiration:complete")) >= 10, timeout=10)
    lateness = {}
    for at, payload in tap.events("expiration:complete"):
        lateness[payload["orderId"]] = at - deadlines[payload["orderId"]].timestamp()
    assert set(lateness) == set(deadlines)
    assert all(-0.01 <= late < 1.0 for late in lateness.values()), lateness


def test_an_expiry_already_due_completes_at_once(expiration):
    dispatch, tap = expiration
    started = time.time()
    dispatch("orders", events.ORDER_CREATED, order_created("c" * 32, events.utcnow() - timedelta(seconds=5)))
    (at, _), = tap.wait("expiration:complete", orderId="c" * 32)
    assert at - started < 1.0
