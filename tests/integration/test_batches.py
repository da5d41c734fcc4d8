"""Batch event handlers on a real broker: a poison message inside a batch, a redelivered batch.

The tickets service's order:cancelled handler takes its messages in batches
(``services/common/batches.py``). The messages are queued while no consumer
runs, then a container starts with a long linger, so they arrive as one batch.
"""
import logging
from decimal import Decimal

import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.utils import get_extension

from services.common import events
from services.common.batches import BatchEventHandler
from services.tickets.service import TicketsService
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SELLER, BUYER = "a" * 32, "b" * 32


class Updates:
    """Records every ticket:updated the tickets service publishes."""

    name = "batch_listener"
    seen: list = []

    @event_handler("tickets", events.TICKET_UPDATED)
    def on_updated(self, payload):
        Updates.seen.append(payload)


class Tickets:
    def __init__(self, container_factory, config):
        self.factory, self.config = container_factory, config
        self.dispatch = event_dispatcher({"AMQP_URI": config["AMQP_URI"]})
        self.container = self.start()

    def start(self, linger=None):
        container = self.factory(TicketsService, self.config)
        if linger is not None:
            get_extension(container, BatchEventHandler, method_name="on_order_cancelled").linger = linger
        container.start()
        return container

    def rpc(self):
        return ServiceRpcProxy("tickets", self.config)

    def reserved_tickets(self, n):
        """n tickets, each held by an order of its own: {ticket id: order id}."""
        held = {}
        with self.rpc() as rpc:
            for i in range(n):
                ticket = rpc.create_user_ticket(SELLER, f"Seat {i}", "10")
                order_id = f"{i:x}".rjust(32, "c")
                self.dispatch("orders", events.ORDER_CREATED, events.new_event(
                    events.ORDER_CREATED, id=order_id, version=0, status="created", userId=BUYER,
                    userEmail="b@example.com", expiresAt="2030-01-01T00:00:00.000Z",
                    ticket={"id": ticket["id"], "price": Decimal("10")}))
                held[ticket["id"]] = order_id
            wait_for(lambda: all(rpc.get_ticket(t)["orderId"] == o for t, o in held.items()), timeout=15)
        return held

    def queued_while_stopped(self, payloads, linger=0.5):
        """Stop the service, queue ``payloads`` as order:cancelled, start it again: they come as one batch."""
        self.container.stop()
        for payload in payloads:
            self.dispatch("orders", events.ORDER_CANCELLED, payload)
        self.container = self.start(linger=linger)

    def tickets(self, ids):
        with self.rpc() as rpc:
            return {ticket_id: rpc.get_ticket(ticket_id) for ticket_id in ids}


@pytest.fixture
def tickets(container_factory, service_config, postgres_url):
    Updates.seen = []
    config = service_config("tickets", postgres_url)
    container_factory(Updates, config).start()
    return Tickets(container_factory, config)


def cancellation(ticket_id, order_id):
    return events.new_event(events.ORDER_CANCELLED, id=order_id, version=1, ticket={"id": ticket_id})


def releases(held):
    return [u for u in Updates.seen if u["id"] in held and u["orderId"] is None]


def test_a_poison_message_inside_a_batch_is_parked_alone_and_the_rest_applied(tickets, caplog):
    held = tickets.reserved_tickets(4)
    poison = {**cancellation(*next(iter(held.items()))), "ticket": "not a ticket"}  # fails validation
    batch = [cancellation(t, o) for t, o in held.items()]
    with caplog.at_level(logging.INFO, logger="services.common.batches"):
        tickets.queued_while_stopped(batch[:2] + [poison] + batch[2:])
        wait_for(lambda: len(releases(held)) == 4, timeout=15)
        with tickets.rpc() as rpc:
            wait_for(lambda: len(rpc.list_parked()) == 1, timeout=15)
            parked, = rpc.list_parked()
    assert parked["payload"]["ticket"] == "not a ticket"
    assert all(t["orderId"] is None and t["version"] == 2 for t in tickets.tickets(held).values())
    assert any("a batch of 5 messages" in r.getMessage() and "handling each on its own" in r.getMessage()
               for r in caplog.records)


def test_a_redelivered_batch_changes_nothing_more(tickets, caplog):
    held = tickets.reserved_tickets(4)
    batch = [cancellation(t, o) for t, o in held.items()]

    def handled():  # the handler logs each message of a batch it handled, a repeat too
        return sum("was cancelled" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="services.tickets.service"):
        tickets.queued_while_stopped(batch + batch)  # the same events twice in one batch (a relay's duplicates)
        wait_for(lambda: handled() == 8, timeout=15)
        assert len(releases(held)) == 4
        tickets.queued_while_stopped(batch)  # and the whole batch again, later (a redelivery after a crash)
        wait_for(lambda: handled() == 12, timeout=15)
    assert all(t["orderId"] is None and t["version"] == 2 for t in tickets.tickets(held).values())
    assert len(releases(held)) == 4  # one ticket:updated per release, none for the repeats
