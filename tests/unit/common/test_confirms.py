"""ConfirmedPublisher: a batch that failed on one node of a cluster is tried again on the next one."""
import pytest

from services.common import confirms
from services.common.confirms import ConfirmedPublisher, Outgoing

NODES = ["amqp://u:p@rabbit-0:5672/v", "amqp://u:p@rabbit-1:5672/v", "amqp://u:p@rabbit-2:5672/v"]


class FakeLink:
    """Connects to the first address of its list; rabbit-0 is shutting down: it accepts, then drops."""

    tried: list[str] = []

    def __init__(self, amqp_uri):
        self.node = amqp_uri.split(";")[0]
        FakeLink.tried.append(self.node)

    def publish_all(self, messages, timeout):
        if "rabbit-0" in self.node:
            raise ConnectionResetError(104, "Connection reset by peer")

    def close(self):
        pass


@pytest.fixture(autouse=True)
def fake_links(monkeypatch):
    FakeLink.tried = []
    monkeypatch.setattr(confirms, "_ConfirmingLink", FakeLink)


def test_the_second_try_of_a_failed_batch_starts_at_the_next_node_of_the_list():
    publisher = ConfirmedPublisher(";".join(NODES))
    publisher.publish([Outgoing({"n": 1}, "", "q")])
    assert FakeLink.tried == [NODES[0], NODES[1]]
    publisher._idle.clear()
    publisher.publish([Outgoing({"n": 2}, "", "q")])  # new connections keep away from the node that failed
    assert FakeLink.tried[-1] == NODES[1]


def test_one_broker_is_tried_twice_and_the_error_raised():
    publisher = ConfirmedPublisher(NODES[0])
    with pytest.raises(ConnectionResetError):
        publisher.publish([Outgoing({"n": 1}, "", "q")])
    assert FakeLink.tried == [NODES[0], NODES[0]]
