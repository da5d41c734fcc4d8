"""QUEUE_TYPE=quorum on the real broker: every durable queue comes out quorum, and delays, retries and
parking still work through quorum holding queues that dead-letter at least once."""
from datetime import timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy

from services.common import events
from services.common.handlers import event_handler
from services.common.health import broker_reachable
from services.common.net import free_port
from services.common.queues import StandaloneReplyListener
from services.common.rpc import rpc
from ticketing.cli import SERVICES, service_class
from tests.e2e.orders_support import EventTap, vhost_of
from tests.integration.test_confirmation_service import messages_in
from tests.integration.test_expiration_service import order_created
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def quorum_config(service_config, tmp_path):
    def build(service):
        return {**service_config(service), "QUEUE_TYPE": "quorum", "MAIL_OUTBOX_DIR": str(tmp_path / "mail")}

    return build


def queues_by_name(rabbit_admin, amqp_uri):
    return {q["name"]: q for q in rabbit_admin.queue_list(vhost_of(amqp_uri))}


def test_every_durable_queue_of_every_service_is_a_quorum_queue_and_expiry_still_works(
        container_factory, quorum_config, rabbit_config, rabbit_admin):
    amqp_uri = rabbit_config["AMQP_URI"]
    for name in SERVICES:
        container_factory(service_class(name), quorum_config(name)).start()
    tap = EventTap(amqp_uri, {"expiration": ["expiration:complete"]})
    try:
        deadline = events.utcnow() + timedelta(seconds=1)
        event_dispatcher(rabbit_config)("orders", events.ORDER_CREATED, order_created("e" * 32, deadline))
        (at, _), = tap.wait("expiration:complete", timeout=5, orderId="e" * 32)
        assert 0 <= at - deadline.timestamp() < 1.0
        # the gateway's kind of client
        with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json", "QUEUE_TYPE": "quorum"},
                             reply_listener_cls=StandaloneReplyListener) as rpc:
            assert rpc.tickets.list_tickets() is not None  # a reply came back on it
            gateway_replies = {n for n, q in queues_by_name(rabbit_admin, amqp_uri).items()
                               if n.startswith("rpc.reply-standalone_rpc_proxy")}
    finally:
        tap.close()

    found = queues_by_name(rabbit_admin, amqp_uri)
    durable = {name: q for name, q in found.items() if q["durable"]}
    assert {f"rpc-{name}" for name in SERVICES if name != "expiration"} <= set(durable)
    assert {"expiration.due", "delay.1000ms", "evt-orders-order:created--expiration.on_order_created",
            "evt-payments-payment:created--orders.on_payment_created"} <= set(durable)
    assert {name: q["type"] for name, q in durable.items() if q["type"] != "quorum"} == {}
    assert found["delay.1000ms"]["arguments"] == {
        "x-message-ttl": 1000, "x-dead-letter-exchange": "", "x-queue-type": "quorum"}
    # RPC replies too: orders and payments call each other, the gateway calls everyone
    replies = {name for name in found if name.startswith("rpc.reply-")}
    assert {"orders", "payments"} <= {name.split("-")[1] for name in replies}
    assert gateway_replies and gateway_replies <= set(durable)


class Flaky:
    name = "flaky"

    @event_handler("orders", events.ORDER_CREATED, consumer="always_fails", max_attempts=2)
    def always_fails(self, payload):
        raise RuntimeError("this handler always fails")


def test_a_failing_handler_is_retried_through_a_quorum_delay_queue_and_parked_in_a_quorum_queue(
        container_factory, rabbit_config, rabbit_admin):
    """With at-least-once dead-lettering, which RabbitMQ accepts only with reject-publish (and stream_queue on)."""
    amqp_uri = rabbit_config["AMQP_URI"]
    container = container_factory(Flaky, {**rabbit_config, "serializer": "json", "QUEUE_TYPE": "quorum",
                                          "QUORUM_DEAD_LETTERING": "at-least-once"})
    container.start()
    inbox = "evt-orders-order:created--flaky.always_fails"
    event_dispatcher(rabbit_config)("orders", events.ORDER_CREATED, order_created("f" * 32, events.utcnow()))
    # attempt 1 fails -> 1 s in delay.1000ms -> attempt 2 fails -> parked
    wait_for(lambda: messages_in(amqp_uri, f"{inbox}.parked") == 1, timeout=8, what="the message parked")
    found = queues_by_name(rabbit_admin, amqp_uri)
    assert {found[name]["type"] for name in (inbox, f"{inbox}.parked", "delay.1000ms")} == {"quorum"}
    assert found["delay.1000ms"]["arguments"]["x-dead-letter-strategy"] == "at-least-once"


class Echo:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


def test_with_several_broker_addresses_services_and_clients_use_the_one_that_answers(
        container_factory, rabbit_config):
    """The first two addresses are dead nodes: the service, an RPC client and the readiness check fail over."""
    dead = [f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(2)]
    cluster = {"AMQP_URI": ";".join(dead + [rabbit_config["AMQP_URI"]]), "serializer": "json", "QUEUE_TYPE": "quorum"}
    container_factory(Echo, cluster).start()
    with ClusterRpcProxy(cluster, reply_listener_cls=StandaloneReplyListener, timeout=5) as client:
        assert client.echo.echo("over there") == "over there"
    broker_reachable(cluster["AMQP_URI"])
