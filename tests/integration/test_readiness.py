"""Readiness follows the broker: false while it is away, true again when it is back.

A TCP proxy stands between the service and the shared RabbitMQ (which is never stopped)."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from nameko.standalone.events import event_dispatcher

from services.common import events
from services.common.net import free_port
from services.expiration.service import ExpirationService
from tests.e2e.orders_support import EventTap
from tests.integration.test_expiration_service import order_created
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def through(proxy: TcpProxy, amqp_uri: str) -> str:
    parts = urlsplit(amqp_uri)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))


def ready(url: str):
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return None


@pytest.fixture
def proxy():
    # requested before container_factory, so it closes after the container has stopped
    proxy = TcpProxy()
    yield proxy
    proxy.close()


def test_readiness_goes_false_without_the_broker_and_true_when_it_is_back(proxy, container_factory, rabbit_config):
    port = free_port()
    container = container_factory(ExpirationService, {"AMQP_URI": through(proxy, rabbit_config["AMQP_URI"]),
                                                      "serializer": "json", "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})
    container.start()
    url = f"http://127.0.0.1:{port}/readyz"
    wait_for(lambda: ready(url) == 200, timeout=15, what="ready at start")

    proxy.cut()
    wait_for(lambda: ready(url) == 503, timeout=15, what="not ready without the broker")
    assert requests.get(url, timeout=3).json()["checks"]["broker"].startswith("unreachable")

    proxy.restore()
    wait_for(lambda: ready(url) == 200, timeout=30, what="ready again with the broker back")
    # and it works again: an expiry due now comes out as expiration:complete
    tap = EventTap(rabbit_config["AMQP_URI"], {"expiration": ["expiration:complete"]})
    try:
        due = events.utcnow()
        wait_for(lambda: (event_dispatcher(rabbit_config)("orders", events.ORDER_CREATED, order_created("c" * 32, due))
                          or tap.events("expiration:complete")), timeout=30, interval=1,
                 what="the service consuming again")
    finally:
        tap.close()
