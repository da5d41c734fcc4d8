"""The orders sweeps log each order they act on with its id and a correlation id of its own."""
import logging

import eventlet
import pytest
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from services.common import logs
from tests.integration.test_orders_service import ALICE, new_id, orders  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def database_url(tmp_path):
    """Logging does not depend on the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'orders.db'}"


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.INFO, logger="services.orders")  # the service and its service layer
    caplog.handler.addFilter(logs.ContextFilter("orders"))
    return caplog


@pytest.fixture
def orders_settings():
    return {"EXPIRATION_WINDOW_SECONDS": "0.2", "ORDERS_EXPIRY_GRACE_SECONDS": "0.1"}


def test_the_safety_nets_line_names_the_order_and_its_own_correlation_id(orders, records):
    ticket = orders.listed_ticket(new_id(7))
    first = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    eventlet.sleep(0.4)
    with entrypoint_waiter(orders.listener, "on_cancelled"):
        with entrypoint_hook(orders.container, "cancel_overdue_orders") as sweep:
            sweep()
    (line,) = [r for r in records.records if r.getMessage().startswith("safety net: cancelled")]
    assert line.order_id == first["id"]
    created = [r for r in records.records if r.getMessage().startswith(f"order {first['id']} created")]
    assert line.correlation_id and line.correlation_id != created[0].correlation_id
