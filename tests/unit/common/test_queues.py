"""QUEUE_TYPE: which durable queues become quorum queues, with which arguments, and that every service uses it."""
import inspect

import pytest
from kombu import Exchange, Queue
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import Consumer as NamekoConsumer
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer as NamekoRpcConsumer
from nameko.rpc import RpcProxy as NamekoRpcProxy

from services.common import config, queues
from services.common.settings import ServiceSettings
from services.orders.settings import OrdersSettings
from services.common.delays import durable_queue, holding_queue
from ticketing.cli import SERVICES, service_class


def test_classic_leaves_every_queue_as_declared():
    queue = holding_queue(2000)
    assert queues.typed(queue, queues.CLASSIC) is queue


def test_quorum_makes_a_durable_queue_a_quorum_queue():
    queue = queues.typed(durable_queue("expiration.due"), queues.QUORUM)
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.name == "expiration.due" and queue.durable and queue.routing_key == "expiration.due"


def test_a_quorum_holding_queue_keeps_its_ttl_and_dead_letters_at_most_once_by_default():
    queue = queues.typed(holding_queue(2000), queues.QUORUM)
    assert queue.queue_arguments == {"x-message-ttl": 2000, "x-dead-letter-exchange": "", "x-queue-type": "quorum"}
    assert queue.exchange.name == "delay.2000ms" and queue.exchange.type == "fanout"


def test_at_least_once_dead_lettering_comes_with_reject_publish_and_only_on_queues_that_dead_letter():
    queue = queues.typed(holding_queue(2000), queues.QUORUM, queues.AT_LEAST_ONCE)
    assert queue.queue_arguments == {
        "x-message-ttl": 2000, "x-dead-letter-exchange": "",
        "x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
    }
    parked = queues.typed(durable_queue("x.parked"), queues.QUORUM, queues.AT_LEAST_ONCE)
    assert parked.queue_arguments == {"x-queue-type": "quorum"}


def test_the_dead_lettering_setting(monkeypatch):
    monkeypatch.delenv("QUORUM_DEAD_LETTERING", raising=False)
    assert ServiceSettings.load({}).quorum_dead_lettering == "at-most-once"
    monkeypatch.setenv("QUORUM_DEAD_LETTERING", "at-least-once")
    assert ServiceSettings.load({}).quorum_dead_lettering == "at-least-once"
    assert ServiceSettings.load({"QUORUM_DEAD_LETTERING": "at-most-once"}).quorum_dead_lettering == "at-most-once"
    assert OrdersSettings.load().nameko_config()["QUORUM_DEAD_LETTERING"] == "at-least-once"
    with pytest.raises(config.ConfigurationError, match="QUORUM_DEAD_LETTERING"):
        ServiceSettings.load({"QUORUM_DEAD_LETTERING": "exactly-once"})


@pytest.mark.parametrize("queue", [
    Queue("rpc.reply-x-1", exchange=Exchange("nameko-rpc"), durable=False, queue_arguments={"x-expires": 300000}),
    Queue("tap", durable=True, exclusive=True),
    Queue("broadcast", durable=True, auto_delete=True),
])
def test_transient_queues_stay_classic(queue):
    assert queues.typed(queue, queues.QUORUM) is queue


def test_the_container_config_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("QUEUE_TYPE", "classic")
    assert ServiceSettings.load({"QUEUE_TYPE": "quorum"}).queue_type == "quorum"
    monkeypatch.setenv("QUEUE_TYPE", "Quorum")
    assert ServiceSettings.load({}).queue_type == "quorum"
    from services.expiration.settings import ExpirationSettings

    assert ExpirationSettings.load().nameko_config()["QUEUE_TYPE"] == "quorum"


def test_a_queue_type_other_than_classic_or_quorum_is_refused(monkeypatch):
    monkeypatch.setenv("QUEUE_TYPE", "stream")
    with pytest.raises(config.ConfigurationError, match="QUEUE_TYPE must be classic or quorum, got 'stream'"):
        ServiceSettings.load()
    with pytest.raises(config.ConfigurationError, match="QUEUE_TYPE"):
        ServiceSettings.load({"QUEUE_TYPE": "lazy"})


def entrypoints(service):
    for _name, method in inspect.getmembers(service, inspect.isfunction):
        yield from getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ())


@pytest.mark.parametrize("name", SERVICES)
def test_every_queue_a_service_consumes_is_declared_with_the_configured_type(name):
    """A plain ``nameko.rpc.rpc`` or ``nameko.events.event_handler`` would declare a classic queue whatever
    QUEUE_TYPE says: every entrypoint that consumes a durable queue must come from services.common."""
    consuming = [ep for ep in entrypoints(service_class(name)) if isinstance(ep, (NamekoRpc, NamekoConsumer))]
    assert consuming, f"{name} consumes nothing?"
    for entrypoint in consuming:
        if isinstance(entrypoint, NamekoRpc):
            assert isinstance(entrypoint.rpc_consumer, queues.TypedQueue), f"{name}: {entrypoint!r} uses nameko's rpc"
            assert isinstance(entrypoint.rpc_consumer, NamekoRpcConsumer)
        else:
            assert isinstance(entrypoint, queues.TypedQueue), f"{name}: {entrypoint!r} declares a classic queue"


@pytest.mark.parametrize("name", SERVICES)
def test_every_rpc_client_of_a_service_gets_its_replies_on_a_queue_of_the_configured_type(name):
    """nameko's own RpcProxy declares a durable classic reply queue, which cannot be declared again while
    its node is down: the service could not consume anything after failing over."""
    from services.common.rpc import ServiceRpc

    for attr, value in inspect.getmembers(service_class(name)):
        assert not isinstance(value, NamekoRpcProxy), f"{name}.{attr} is nameko's RpcProxy"
        if isinstance(value, ServiceRpc):
            assert isinstance(value.rpc_reply_listener, queues.TypedReplies)


class FakeQueueConsumer:
    def register_provider(self, provider):
        self.provider = provider


@pytest.mark.parametrize("listener_cls", [queues.ReplyListener, queues.StandaloneReplyListener])
def test_reply_queues_are_transient_when_classic_and_quorum_when_quorum(listener_cls):
    class Container:
        service_name = "payments"
        config = {"QUEUE_TYPE": "classic"}

    listener = listener_cls()
    listener.container, listener.queue_consumer = Container(), FakeQueueConsumer()
    listener.setup()
    assert listener.queue_consumer.provider is listener
    classic = listener.queue
    assert classic.name.startswith("rpc.reply-payments-") and classic.routing_key == listener.routing_key
    assert not classic.durable and classic.queue_arguments == {"x-expires": 300000}

    Container.config = {"QUEUE_TYPE": "quorum"}
    listener.container = Container()  # settings are read once per container
    listener.setup()
    assert listener.queue.durable and listener.queue.queue_arguments == {"x-expires": 300000, "x-queue-type": "quorum"}
    assert listener.queue.exchange.name == "nameko-rpc"
