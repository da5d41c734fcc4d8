"""Several broker addresses in AMQP_URI: failover in the health check, no password in logs."""
import logging

import pytest
from nameko.messaging import QueueConsumer

from services.common import broker, queues  # noqa: F401  (queues installs the redaction, as in a service)
from services.common.health import broker_reachable

CLUSTER = "amqp://app:first-secret@rabbit-0:5672/v;amqp://app:second-secret@rabbit-1:5672/v"


def test_every_address_of_a_cluster_is_redacted():
    assert broker.addresses(CLUSTER + ";") == ["amqp://app:first-secret@rabbit-0:5672/v",
                                               "amqp://app:second-secret@rabbit-1:5672/v"]
    redacted = broker.redact(CLUSTER)
    assert "secret" not in redacted and "rabbit-0" in redacted and "rabbit-1" in redacted


def test_nameko_logs_a_connection_error_without_any_password(caplog):
    consumer = QueueConsumer()
    consumer.container = type("Container", (), {"config": {"AMQP_URI": CLUSTER}})()
    with caplog.at_level(logging.WARNING):
        consumer.on_connection_error(ConnectionRefusedError(), 1)
    assert "rabbit-1" in caplog.text and "secret" not in caplog.text


def test_not_ready_when_no_address_answers(unused_tcp_ports):
    dead_a, dead_b = (f"amqp://guest:guest@127.0.0.1:{port}/" for port in unused_tcp_ports)
    with pytest.raises(Exception):
        broker_reachable(f"{dead_a};{dead_b}")


@pytest.fixture
def unused_tcp_ports():
    import socket

    socks = [socket.socket() for _ in range(2)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports
