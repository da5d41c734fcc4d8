"""Infrastructure errors are told apart from bugs; a service process restarts its dead container."""
import socket

import pytest
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import RpcTimeout
from sqlalchemy import exc as sa_exc

from services.common.errors import BadRequest, ServiceUnavailable
from services.common.rpc import deadline_of, is_infrastructure_error
from ticketing import cli


class AdminShutdown(Exception):
    pass


@pytest.mark.parametrize("error", [
    sa_exc.OperationalError("SELECT 1", {}, AdminShutdown("terminating connection due to administrator command")),
    sa_exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
    sa_exc.DisconnectionError("gone"),
    sa_exc.TimeoutError("QueuePool limit reached"),
    KombuOperationalError("[Errno 111] Connection refused"),
    ConnectionRefusedError(111, "refused"),
    socket.timeout("timed out"),
    RpcTimeout(),
    ServiceUnavailable(),
])
def test_infrastructure_errors_are_recognised(error):
    assert is_infrastructure_error(error)


@pytest.mark.parametrize("error", [
    sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    KeyError("x"), ValueError("bad"), BadRequest("Title is required", field="title"),
])
def test_bugs_and_bad_requests_are_not_infrastructure(error):
    assert not is_infrastructure_error(error)


def test_a_dbapi_error_that_invalidated_the_connection_is_infrastructure():
    error = sa_exc.DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    assert is_infrastructure_error(error)


def test_deadline_header_parsing():
    assert deadline_of({"nameko.deadline": 12.5}) == 12.5
    assert deadline_of({"nameko.deadline": "12.5"}) == 12.5
    assert deadline_of({"nameko.deadline": "soon"}) is None
    assert deadline_of(None) is None and deadline_of({}) is None


def test_ticketing_run_starts_a_dead_service_again_and_stops_on_a_clean_exit():
    runs, pauses = [], []

    def run_once():
        runs.append(1)
        if len(runs) < 4:
            raise ConnectionRefusedError(111, "ECONNREFUSED")  # what kills a nameko 2 container

    cli.supervise("orders", run_once, sleep=pauses.append)
    assert len(runs) == 4
    assert pauses == list(cli.RESTART_PAUSES[:3])


def test_ticketing_run_stops_for_good_on_a_configuration_error():
    """A placeholder key is refused when the container starts: restarting would refuse it forever."""
    from services.common.config import ConfigurationError

    runs, pauses = [], []

    def run_once():
        runs.append(1)
        raise ConfigurationError("JWT_PRIVATE_KEY is not a PEM private key")

    with pytest.raises(SystemExit, match="auth: JWT_PRIVATE_KEY is not a PEM private key"):
        cli.supervise("auth", run_once, sleep=pauses.append)
    assert len(runs) == 1 and pauses == []


def test_every_service_answers_rpcs_with_the_deadline_aware_entrypoint():
    """nameko's own @rpc next to ours would consume a service's queue twice (and miss deadlines)."""
    from nameko.rpc import Rpc as NamekoRpc

    from services.common.rpc import Rpc

    for name in cli.SERVICES:
        for klass in cli.service_class(name).__mro__:
            for attribute in vars(klass).values():
                for entrypoint in getattr(attribute, "nameko_entrypoints", ()):
                    if isinstance(entrypoint, NamekoRpc):
                        assert type(entrypoint) is Rpc, f"{name}.{attribute.__name__}"


def replying_consumer(monkeypatch, publisher_class):
    """An RPC consumer whose replies go through ``publisher_class``, and a request message to answer."""
    from unittest import mock

    from services.common import rpc

    monkeypatch.setattr(rpc, "Publisher", publisher_class)
    consumer = rpc.RpcConsumer()
    consumer.container = mock.Mock(config={"AMQP_URI": "memory://"})
    consumer.queue_consumer = mock.Mock()
    message = mock.Mock(properties={"content_type": "application/json", "reply_to": "rpc.reply-1",
                                    "correlation_id": "c1"})
    return consumer, message


def test_rpc_replies_are_sent_without_waiting_for_a_broker_confirm(monkeypatch):
    """A reply goes to its caller's exclusive queue: a publisher confirm per reply buys nothing."""
    published = []

    class Recording:
        def __init__(self, amqp_uri, use_confirms=None, **kwargs):
            self.use_confirms = use_confirms

        def publish(self, payload, **kwargs):
            published.append((self.use_confirms, payload, kwargs["routing_key"]))

    consumer, message = replying_consumer(monkeypatch, Recording)
    assert consumer.handle_result(message, {"ok": True}, None) == ({"ok": True}, None)
    assert published == [(False, {"result": {"ok": True}, "error": None}, "rpc.reply-1")]
    consumer.queue_consumer.ack_message.assert_called_once_with(message)


def test_a_reply_that_cannot_be_published_is_logged_not_fatal(monkeypatch, caplog):
    """The broker went away while the worker ran: nameko would kill the whole container (every
    entrypoint of the service) on the reply's error. The request stays unacknowledged, so the broker
    redelivers it once it is back (its deadline or request id keep it from a second effect)."""
    from kombu.exceptions import OperationalError

    class BrokerGone:
        def __init__(self, amqp_uri, use_confirms=None, **kwargs):
            pass

        def publish(self, payload, **kwargs):
            raise OperationalError("[Errno 111] Connection refused")

    consumer, message = replying_consumer(monkeypatch, BrokerGone)
    with caplog.at_level("WARNING", logger="services.common.rpc"):
        assert consumer.handle_result(message, {"ok": True}, None) == ({"ok": True}, None)
    consumer.queue_consumer.ack_message.assert_not_called()
    assert "could not send the reply" in caplog.text
