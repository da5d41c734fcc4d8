"""A process that dies between committing a change and publishing its event loses nothing.

The tickets service runs as its own process with a test hook that exits right
after the commit of a ``ticket:created``. After a restart the outbox relay
publishes the event, and the redelivered RPC finds the ticket it already
created instead of listing a second one: one ticket, one event, exactly once.
"""
import time

import pytest
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from services.common import events
from services.common.net import free_port
from tests.support.processes import start_component, stop, wait_healthy

pytestmark = pytest.mark.integration


class Listener:
    name = "crash_listener"
    seen: list = []

    @event_handler("tickets", events.TICKET_CREATED)
    def on_created(self, payload):
        Listener.seen.append(payload)


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_event_survives_a_crash_between_commit_and_publish(vhost, postgres_url, container_factory, tmp_path):
    Listener.seen = []
    listener = container_factory(Listener, {"AMQP_URI": vhost})
    listener.start()
    port = free_port()
    env = {"AMQP_URI": vhost, "TICKETS_DATABASE_URL": postgres_url, "HEALTH_PORT": str(port),
           "OUTBOX_RELAY_INTERVAL": "0.2", "OUTBOX_RELAY_GRACE": "0.5"}
    log = tmp_path / "tickets.log"

    doomed = start_component("tickets", {**env, "TICKETING_CRASH_AFTER_COMMIT": events.TICKET_CREATED}, log)
    # readiness, not liveness: /readyz answers 200 once the RPC consumer is up (its queue bound)
    wait_healthy(f"http://127.0.0.1:{port}/readyz", doomed, log)
    with ServiceRpcProxy("tickets", {"AMQP_URI": vhost}, timeout=30) as rpc:
        reply = rpc.create_user_ticket.call_async("a" * 32, "Show", "10.00", "request-1")
        assert doomed.wait(timeout=20) == 70, log.read_text()[-2000:]

        engine = create_engine(postgres_url)
        assert count(engine, "tickets") == 1 and count(engine, "outbox") == 1
        time.sleep(0.5)
        assert Listener.seen == []  # committed, never published

        restarted = start_component("tickets", env, log)
        try:
            ticket = reply.result()  # the redelivered RPC answers with the ticket already made
            deadline = time.monotonic() + 10
            while not Listener.seen and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.5)  # room for a duplicate to show up, if there were one
        finally:
            stop(restarted)

    assert [p["id"] for p in Listener.seen] == [ticket["id"]]
    assert count(engine, "tickets") == 1 and count(engine, "outbox") == 0
    assert "outbox relay published 1 event" in log.read_text()
    engine.dispose()
