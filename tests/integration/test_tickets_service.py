"""The tickets service in a real nameko container on a real broker (SQLite and PostgreSQL)."""
from decimal import Decimal

import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound
from services.tickets.service import TicketsService

pytestmark = pytest.mark.integration

ALICE, BOB = "a" * 32, "b" * 32


class Listener:
    """A stand-in consumer that records what the tickets service publishes."""

    name = "listener"
    seen: list = []

    @event_handler("tickets", events.TICKET_CREATED)
    def on_created(self, payload):
        Listener.seen.append((events.TICKET_CREATED, payload))

    @event_handler("tickets", events.TICKET_UPDATED)
    def on_updated(self, payload):
        Listener.seen.append((events.TICKET_UPDATED, payload))


@pytest.fixture
def tickets(container_factory, service_config, database_url):
    Listener.seen = []
    config = service_config("tickets", database_url)
    listener = container_factory(Listener, config)
    listener.start()
    container = container_factory(TicketsService, config)
    container.start()
    with ServiceRpcProxy("tickets", config) as rpc:
        yield rpc, listener


def test_create_emits_ticket_created_with_exact_price(tickets):
    rpc, listener = tickets
    with entrypoint_waiter(listener, "on_created"):
        ticket = rpc.create_user_ticket(ALICE, "  Concert  ", "12.50")
    assert ticket["title"] == "Concert" and ticket["price"] == "12.50" and ticket["version"] == 0
    name, payload = Listener.seen[0]
    assert name == events.TICKET_CREATED
    assert payload["id"] == ticket["id"] and payload["version"] == 0 and payload["price"] == "12.50"
    assert payload["eventId"] and payload["occurredAt"].endswith("Z")


def test_update_by_owner_bumps_version_and_emits(tickets):
    rpc, listener = tickets
    ticket = rpc.create_user_ticket(ALICE, "Concert", "10")
    with entrypoint_waiter(listener, "on_updated"):
        updated = rpc.update_user_ticket(ALICE, ticket["id"], "Concert (front row)", "20.25")
    assert updated["version"] == 1 and Decimal(updated["price"]) == Decimal("20.25")
    assert [p["version"] for n, p in Listener.seen if n == events.TICKET_UPDATED] == [1]


def test_update_rules(tickets):
    rpc, _ = tickets
    ticket = rpc.create_user_ticket(ALICE, "Concert", "10")
    with pytest.raises(Forbidden):
        rpc.update_user_ticket(BOB, ticket["id"], "Mine now", "1")
    with pytest.raises(NotFound):
        rpc.update_user_ticket(ALICE, "f" * 32, "x", "1")
    with pytest.raises(NotFound):
        rpc.get_ticket("not-an-id")


def test_reserved_ticket_is_not_listed_nor_editable_and_comes_back(tickets, vhost):
    rpc, listener = tickets
    ticket = rpc.create_user_ticket(ALICE, "Concert", "10")
    order_id = "c" * 32
    dispatch = event_dispatcher({"AMQP_URI": vhost})
    created = events.new_event(events.ORDER_CREATED, id=order_id, version=0, status="created", userId=BOB,
                               userEmail="bob@example.com", expiresAt="2030-01-01T00:00:00.000Z",
                               ticket={"id": ticket["id"], "price": Decimal("10")})
    with entrypoint_waiter(listener, "on_updated"):
        dispatch("orders", events.ORDER_CREATED, created)
    reserved = rpc.get_ticket(ticket["id"])
    assert reserved["orderId"] == order_id and reserved["version"] == 1
    assert ticket["id"] not in [t["id"] for t in rpc.list_tickets()["tickets"]]
    with pytest.raises(Conflict, match="Cannot edit a reserved ticket"):
        rpc.update_user_ticket(ALICE, ticket["id"], "x", "1")

    # a redelivered order:created has no second effect
    dispatch("orders", events.ORDER_CREATED, created)
    cancelled = events.new_event(events.ORDER_CANCELLED, id=order_id, version=1, ticket={"id": ticket["id"]})
    with entrypoint_waiter(listener, "on_updated"):
        dispatch("orders", events.ORDER_CANCELLED, cancelled)
    released = rpc.get_ticket(ticket["id"])
    assert released["orderId"] is None and released["version"] == 2
    assert ticket["id"] in [t["id"] for t in rpc.list_tickets()["tickets"]]


def test_list_pages_newest_first(tickets):
    rpc, _ = tickets
    ids = [rpc.create_user_ticket(ALICE, f"T{i}", "1")["id"] for i in range(5)]
    first = rpc.list_tickets(2)
    assert [t["id"] for t in first["tickets"]] == ids[::-1][:2] and first["next"]
    second = rpc.list_tickets(2, first["next"])
    third = rpc.list_tickets(2, second["next"])
    assert [t["id"] for t in second["tickets"] + third["tickets"]] == ids[::-1][2:]
    assert third["next"] is None


def test_reads_run_outside_a_transaction(postgres_url):
    """A read RPC is one statement on an autocommit connection: no BEGIN before it, no ROLLBACK after."""
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from services.tickets import models, service_layer

    engine = create_engine(postgres_url)
    models.Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add(models.Ticket(id="d" * 32, title="Show", price=Decimal("5"), user_id=ALICE, version=0))
    with service_layer.reader(engine).connect() as conn:
        assert service_layer.ticket_view(conn, "d" * 32)["price"] == "5.00"
        assert service_layer.page_on_sale(conn)[0][0]["id"] == "d" * 32
        status = conn.connection.dbapi_connection.info.transaction_status
        assert status == psycopg.pq.TransactionStatus.IDLE, status
    engine.dispose()


def test_user_facing_ticket_rpcs_need_an_acting_user(tickets):
    rpc, _listener = tickets
    ticket = rpc.create_user_ticket(ALICE, "Concert", "10")
    for missing in (None, "", "operator"):
        with pytest.raises(Forbidden):
            rpc.create_user_ticket(missing, "Concert", "10")
        with pytest.raises(Forbidden):
            rpc.update_user_ticket(missing, ticket["id"], "Mine", "1")
