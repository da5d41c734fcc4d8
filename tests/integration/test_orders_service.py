"""The orders service in a real nameko container on a real broker (SQLite and PostgreSQL)."""
from decimal import Decimal
from urllib.parse import unquote, urlparse

import eventlet
import pytest
from nameko.rpc import rpc
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook, entrypoint_waiter, get_extension
from sqlalchemy import create_engine, select

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.handlers import EventHandler
from services.orders.models import Order, TicketReplica
from services.orders.service import OrdersService
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SELLER, ALICE, BOB = "5" * 32, "a" * 32, "b" * 32


class Listener:
    """Records what the orders service publishes."""

    name = "orders_listener"
    seen: list = []

    @event_handler("orders", events.ORDER_CREATED)
    def on_created(self, payload):
        Listener.seen.append((events.ORDER_CREATED, payload))

    @event_handler("orders", events.ORDER_CANCELLED)
    def on_cancelled(self, payload):
        Listener.seen.append((events.ORDER_CANCELLED, payload))

    @event_handler("orders", events.ORDER_COMPLETED)
    def on_completed(self, payload):
        Listener.seen.append((events.ORDER_COMPLETED, payload))


class Orders:
    def __init__(self, rpc, container, listener, config, url):
        self.rpc, self.container, self.listener, self.config = rpc, container, listener, config
        self.engine = create_engine(url)
        self.dispatch = event_dispatcher({"AMQP_URI": config["AMQP_URI"]})

    def ticket_event(self, ticket_id, version, title="Concert", price="10", name=None):
        payload = events.new_event(events.TICKET_UPDATED, id=ticket_id, version=version, title=title,
                                   price=Decimal(price), userId=SELLER)
        return name or (events.TICKET_CREATED if version == 0 else events.TICKET_UPDATED), payload

    def publish(self, name, payload):
        self.dispatch(events.SOURCE[name], name, payload)

    def replica(self, ticket_id):
        with self.engine.connect() as conn:
            row = conn.execute(select(TicketReplica.version, TicketReplica.title)
                               .where(TicketReplica.id == ticket_id)).first()
        return tuple(row) if row else None

    def wait_for(self, predicate, timeout=10.0):
        return wait_for(predicate, timeout)

    def listed_ticket(self, ticket_id):
        self.publish(*self.ticket_event(ticket_id, 0))
        self.wait_for(lambda: self.replica(ticket_id))
        return ticket_id

    def status(self, order_id):
        with self.engine.connect() as conn:
            return conn.execute(select(Order.status).where(Order.id == order_id)).scalar()


@pytest.fixture
def orders_settings():
    """Settings the orders service starts with (a test parametrizes this to change them)."""
    return {}


@pytest.fixture
def orders(container_factory, service_config, database_url, orders_settings):
    Listener.seen = []
    config = {**service_config("orders", database_url), **orders_settings}
    listener = container_factory(Listener, config)
    listener.start()
    container = container_factory(OrdersService, config)
    container.start()
    with ServiceRpcProxy("orders", config) as rpc:
        yield Orders(rpc, container, listener, config, database_url)


def new_id(n):
    return f"{n:032x}"


def test_create_emits_order_created_and_cancel_emits_order_cancelled(orders):
    ticket = orders.listed_ticket(new_id(1))
    with entrypoint_waiter(orders.listener, "on_created"):
        order = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    assert order["status"] == "created" and order["ticket"] == {"id": ticket, "title": "Concert", "price": "10.00"}
    name, payload = Listener.seen[-1]
    assert payload["id"] == order["id"] and payload["userEmail"] == "alice@example.com"
    assert payload["expiresAt"] == order["expiresAt"] and payload["version"] == 0

    with pytest.raises(Conflict, match="Ticket is already reserved"):
        orders.rpc.create_order(BOB, "bob@example.com", ticket)
    with pytest.raises(Forbidden):
        orders.rpc.cancel_user_order(BOB, order["id"])
    with entrypoint_waiter(orders.listener, "on_cancelled"):
        cancelled = orders.rpc.cancel_user_order(ALICE, order["id"])
    assert cancelled["status"] == "cancelled" and cancelled["version"] == 1
    assert Listener.seen[-1][1] == {**Listener.seen[-1][1], "id": order["id"], "version": 1, "ticket": {"id": ticket}}
    # operators see any order
    assert orders.rpc.get_order(order["id"])["status"] == "cancelled"
    with pytest.raises(NotFound):
        orders.rpc.get_order(new_id(999))


def test_user_facing_rpcs_need_an_acting_user_and_operators_have_their_own(orders):
    ticket = orders.listed_ticket(new_id(2))
    order = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    assert orders.rpc.get_user_order(ALICE, order["id"])["id"] == order["id"]
    with pytest.raises(Forbidden):
        orders.rpc.get_user_order(BOB, order["id"])
    for missing in (None, "", "operator"):  # no "omit the user to become an operator" any more
        with pytest.raises(Forbidden):
            orders.rpc.get_user_order(missing, order["id"])
        with pytest.raises(Forbidden):
            orders.rpc.cancel_user_order(missing, order["id"])
        with pytest.raises(Forbidden):
            orders.rpc.list_user_orders(missing)
    assert [o["id"] for o in orders.rpc.list_user_orders(ALICE)] == [order["id"]]
    assert [o["id"] for o in orders.rpc.find_orders(user_id=ALICE, status="created")] == [order["id"]]
    assert orders.rpc.find_orders(status="complete") == []
    assert orders.rpc.cancel_order(order["id"])["status"] == "cancelled"


@pytest.mark.parametrize("orders_settings", [{"EXPIRATION_WINDOW_SECONDS": "1"}])
def test_expiration_cancels_a_created_order_only(orders):
    ticket_a, ticket_b = orders.listed_ticket(new_id(2)), orders.listed_ticket(new_id(3))
    waiting = orders.rpc.create_order(ALICE, "alice@example.com", ticket_a)
    paying = orders.rpc.create_order(ALICE, "alice@example.com", ticket_b)
    orders.rpc.hold_for_payment(paying["id"], ALICE)
    eventlet.sleep(1.05)  # expiration:complete comes at expiresAt, never before (an early one is ignored)
    with entrypoint_waiter(orders.listener, "on_cancelled"):
        for order in (waiting, paying):
            orders.publish(events.EXPIRATION_COMPLETE, events.new_event(events.EXPIRATION_COMPLETE, orderId=order["id"]))
    orders.wait_for(lambda: orders.status(waiting["id"]) == "cancelled")
    eventlet.sleep(0.3)
    assert orders.status(paying["id"]) == "awaiting:payment"


def test_payment_completes_the_order(orders):
    ticket = orders.listed_ticket(new_id(4))
    order = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    held = orders.rpc.hold_for_payment(order["id"], ALICE)
    assert held["status"] == "awaiting:payment" and held["amountCents"] == 1000
    paid = events.new_event(events.PAYMENT_CREATED, id=new_id(77), orderId=order["id"], chargeId="ch_1")
    with entrypoint_waiter(orders.listener, "on_completed"):
        orders.publish(events.PAYMENT_CREATED, paid)
    name, payload = Listener.seen[-1]
    assert name == events.ORDER_COMPLETED and payload["version"] == 2
    assert payload["userEmail"] == "alice@example.com" and payload["ticket"]["title"] == "Concert"
    with pytest.raises(Conflict):
        orders.rpc.cancel_user_order(ALICE, order["id"])
    with pytest.raises(Conflict, match="Order is already paid"):
        orders.rpc.hold_for_payment(order["id"], ALICE)


def test_replica_takes_v3_when_it_comes_first_and_drops_v2_and_duplicates(orders):
    ticket = orders.listed_ticket(new_id(5))
    v1, v2, v3 = (orders.ticket_event(ticket, v, title=f"v{v}") for v in (1, 2, 3))
    orders.publish(*v1)
    orders.wait_for(lambda: orders.replica(ticket) == (1, "v1"))
    orders.publish(*v3)  # an event carries the whole ticket: the newest one wins, no need to wait for v2
    orders.wait_for(lambda: orders.replica(ticket) == (3, "v3"))
    orders.publish(*v2)  # stale
    orders.publish(*v3)  # a duplicate
    eventlet.sleep(0.5)
    assert orders.replica(ticket) == (3, "v3")


def test_a_ticket_update_that_changes_nothing_kept_is_skipped_and_a_new_price_applied(orders):
    ticket = orders.listed_ticket(new_id(19))
    orders.publish(*orders.ticket_event(ticket, 1))  # reserved: the same title, price and seller
    orders.publish(*orders.ticket_event(ticket, 2))  # released
    eventlet.sleep(0.5)
    assert orders.replica(ticket) == (0, "Concert")  # nothing written
    orders.publish(*orders.ticket_event(ticket, 3, title="Opera", price="12"))  # the seller edits it
    orders.wait_for(lambda: orders.replica(ticket) == (3, "Opera"))


def test_a_parked_event_is_listed_replayed_and_then_applied_and_a_poison_one_dropped(orders, rabbit_admin):
    handler = get_extension(orders.container, EventHandler, method_name="on_ticket_updated")
    handler.retry_for = 1.5  # hours in production; the replica below never starts by itself
    ticket = new_id(6)
    orders.publish(*orders.ticket_event(ticket, 3, title="v3"))  # its ticket:created (v0) got lost
    vhost = unquote(urlparse(orders.config["AMQP_URI"]).path[1:])
    parked = f"{handler.queue.name}.parked"
    orders.wait_for(lambda: rabbit_admin.queues(vhost).get(parked) == 1, timeout=15)
    entry, = orders.rpc.list_parked()
    assert entry["queue"] == handler.queue.name and entry["payload"]["version"] == 3
    assert entry["error"].startswith("NotYetApplicable") and entry["id"]
    assert orders.rpc.list_parked() == [entry]  # listing takes nothing away

    orders.listed_ticket(ticket)  # an operator republished what was lost
    replayed, = orders.rpc.replay_parked(ids=[entry["id"]])
    assert replayed["id"] == entry["id"]
    orders.wait_for(lambda: orders.replica(ticket) == (3, "v3"))
    assert orders.rpc.list_parked() == []

    orders.publish(events.TICKET_UPDATED, {"id": ticket, "version": "not a number"})  # poison: parked at once
    orders.wait_for(lambda: len(orders.rpc.list_parked()) == 1, timeout=5)
    dropped, = orders.rpc.drop_parked(queue=handler.queue.name)
    assert dropped["payload"]["version"] == "not a number" and orders.rpc.list_parked() == []


def test_concurrent_orders_for_one_ticket_yield_exactly_one(orders):
    ticket = orders.listed_ticket(new_id(7))

    def attempt(n):
        with ServiceRpcProxy("orders", orders.config) as rpc:
            try:
                return rpc.create_order(new_id(1000 + n), f"u{n}@example.com", ticket)["id"]
            except Conflict as exc:
                return str(exc)

    results = list(eventlet.GreenPool(20).imap(attempt, range(20)))
    assert results.count("Ticket is already reserved") == 19, results


@pytest.mark.parametrize("orders_settings",
                         [{"EXPIRATION_WINDOW_SECONDS": "0.2", "ORDERS_EXPIRY_GRACE_SECONDS": "0.1"}])
def test_safety_net_cancels_orders_whose_expiry_was_lost(orders):
    ticket = orders.listed_ticket(new_id(8))
    order = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    eventlet.sleep(0.4)
    with entrypoint_waiter(orders.listener, "on_cancelled"):
        with entrypoint_hook(orders.container, "cancel_overdue_orders") as sweep:
            sweep()
    assert orders.status(order["id"]) == "cancelled"


class FakePayments:
    """Answers orders' question about charges in doubt."""

    name = "payments"
    in_doubt: set = set()

    @rpc
    def has_unsettled_charge(self, order_id):
        return order_id in FakePayments.in_doubt


@pytest.mark.parametrize("orders_settings", [{"ORDERS_HOLD_TIMEOUT_SECONDS": "0"}])
def test_a_stale_payment_hold_is_released_only_when_payments_vouches_for_it(orders, container_factory):
    ticket = orders.listed_ticket(new_id(9))
    order = orders.rpc.create_order(ALICE, "alice@example.com", ticket)
    orders.rpc.hold_for_payment(order["id"], ALICE)
    eventlet.sleep(0.05)

    def sweep():
        with entrypoint_hook(orders.container, "release_stale_holds") as release:
            release()

    sweep()  # payments is not running: nobody can say nothing was charged
    assert orders.status(order["id"]) == "awaiting:payment"
    container_factory(FakePayments, orders.config).start()
    FakePayments.in_doubt = {order["id"]}
    sweep()  # a charge is still being settled
    assert orders.status(order["id"]) == "awaiting:payment"
    FakePayments.in_doubt = set()
    sweep()
    assert orders.status(order["id"]) == "created"
    assert orders.rpc.release_any_hold(order["id"])["status"] == "created"  # nothing to release: a no-op
