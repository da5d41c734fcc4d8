"""The event contract is wired end to end: every event has its publisher and a consumer.

docs/adding-a-feature.md relies on these checks: a new event that nobody
publishes or nobody consumes, or a handler listening on the wrong exchange,
fails here before it fails in production. Likewise a handler without a consumer
name of its own, and an outbox or a processed-events table that a service has
without using it (or uses without having it).
"""
import ast
import importlib
import re
from pathlib import Path

import pytest
from nameko.events import EventHandler
from sqlalchemy import create_engine, inspect

from services.common import broker_users, events, handlers
from services.common.config import SERVICES_WITH_DATABASE
from services.common.migrations import upgrade
from services.common.store import Store
from ticketing.cli import SERVICES, service_class

ROOT = Path(__file__).resolve().parents[3]


def consumed_events() -> dict[str, set[tuple[str, str]]]:
    """{event name: {(consuming service, source service it listens to)}} from the nameko classes."""
    found: dict[str, set[tuple[str, str]]] = {}
    for name in SERVICES:
        cls = service_class(name)
        for attr in vars(cls).values():
            for entrypoint in getattr(attr, "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler):
                    found.setdefault(entrypoint.event_type, set()).add((name, entrypoint.source_service))
    return found


def published_events(calls=("emit", "dispatch")) -> dict[str, set[str]]:
    """{event name: {publishing service}}: the services whose code emits or dispatches ``events.X``
    (``calls=("emit",)``: through the outbox only), or names it as the event of a row of its state
    machine (``Transition(..., events.X)``: announced through the outbox)."""
    constants = {key: value for key, value in vars(events).items() if isinstance(value, str) and value in events.PAYLOADS}
    found: dict[str, set[str]] = {}
    for name in SERVICES:
        for path in (ROOT / "services" / name).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in calls and node.args
                        and isinstance(node.args[0], ast.Attribute) and node.args[0].attr in constants):
                    found.setdefault(constants[node.args[0].attr], set()).add(name)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Transition":
                    for arg in node.args:
                        if isinstance(arg, ast.Attribute) and arg.attr in constants:
                            found.setdefault(constants[arg.attr], set()).add(name)
    return found


@pytest.mark.parametrize("event_name", sorted(events.PAYLOADS))
def test_every_event_is_published_by_its_source_service_only(event_name):
    assert published_events().get(event_name) == {events.SOURCE[event_name]}


@pytest.mark.parametrize("event_name", sorted(events.PAYLOADS))
def test_every_event_has_a_consumer_listening_on_the_right_exchange(event_name):
    consumers = consumed_events().get(event_name)
    assert consumers, f"nobody consumes {event_name}"
    for consumer, source in consumers:
        assert source == events.SOURCE[event_name], f"{consumer} listens for {event_name} on {source}"


def test_handlers_only_listen_for_declared_events():
    assert set(consumed_events()) <= set(events.PAYLOADS)


def test_every_service_module_imports():
    for name in SERVICES:
        importlib.import_module(f"services.{name}.service")


def event_handlers(name: str) -> list[EventHandler]:
    cls = service_class(name)
    return [entrypoint for attr in vars(cls).values() for entrypoint in getattr(attr, "nameko_entrypoints", ())
            if isinstance(entrypoint, EventHandler)]


def store_of(name: str) -> Store | None:
    found = [value for value in vars(service_class(name)).values() if isinstance(value, Store)]
    assert len(found) <= 1, f"{name} has {len(found)} stores"
    return found[0] if found else None


@pytest.mark.parametrize("name", SERVICES)
def test_every_handler_has_a_consumer_name_of_its_own(name):
    """The consumer name keys the processed-events record and names the queue: two handlers sharing
    one would drop each other's events as duplicates (and share a queue)."""
    names = []
    for handler in event_handlers(name):
        assert isinstance(handler, handlers.EventHandler), f"{name}: {handler!r} is nameko's, with no consumer name"
        assert handlers.CONSUMER_NAME.fullmatch(handler.consumer)
        # the queue it names is one the service's broker user may consume
        assert re.fullmatch(broker_users.permissions(name)["read"], handler.queue_name(name))
        names.append(handler.consumer)
    assert len(names) == len(set(names)), f"{name}: consumer names used twice: {sorted(names)}"


def test_a_handler_needs_a_consumer_name():
    with pytest.raises(TypeError):
        handlers.handles(events.ORDER_CANCELLED)
    with pytest.raises(TypeError):
        handlers.event_handler("orders", events.ORDER_CANCELLED)(lambda self, payload: None)
    for bad in ("", "Order-Cancelled", "payments.order_cancelled", None):
        with pytest.raises(ValueError):
            handlers.handles(events.ORDER_CANCELLED, consumer=bad)(lambda self, tx, event: None)


def test_the_consumer_name_not_the_method_name_keys_deduplication_and_the_queue(make_store):
    """A method renamed in a release keeps its queue and finds the events it applied before."""
    applied = []
    orders_store = make_store("orders")

    class Before:
        store = orders_store

        @handlers.handles(events.PAYMENT_CREATED, consumer="on_payment_created")
        def on_payment_created(self, tx, event):
            applied.append(("before", event.eventId))

    class After(Before):
        @handlers.handles(events.PAYMENT_CREATED, consumer="on_payment_created")
        def complete_order(self, tx, event):
            applied.append(("after", event.eventId))

    (before,) = Before.on_payment_created.nameko_entrypoints
    (after,) = After.complete_order.nameko_entrypoints
    assert before.queue_name("orders") == after.queue_name("orders") \
        == "evt-payments-payment:created--orders.on_payment_created"

    event = events.new_event(events.PAYMENT_CREATED, id="a" * 32, orderId="b" * 32, chargeId="ch_1")
    Before().on_payment_created(event)
    After().complete_order(event)  # redelivered after the release: already applied
    fresh = events.new_event(events.PAYMENT_CREATED, id="c" * 32, orderId="d" * 32, chargeId="ch_2")
    After().complete_order(fresh)
    assert applied == [("before", event["eventId"]), ("after", fresh["eventId"])]


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_has_an_outbox_if_and_only_if_it_publishes_through_it(name):
    emits = any(name in publishers for publishers in published_events(calls=("emit",)).values())
    store = store_of(name)
    has_outbox = store is not None and store.outbox_model is not None
    assert has_outbox == emits, f"{name}: outbox {has_outbox}, emits events {emits}"
    if store is not None:  # and the table is there only then
        assert ("outbox" in store.declarative_base.metadata.tables) == emits


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_has_a_processed_events_table_if_and_only_if_it_applies_events_once(name):
    """``@handles`` records each event it applies; a handler that is idempotent by other means
    (confirmation: one email per order id; expiration: no database) needs no record."""
    applies_once = [attr for attr in vars(service_class(name)).values() if getattr(attr, "consumer", None)]
    store = store_of(name)
    has_record = store is not None and store.processed_model is not None
    assert has_record == bool(applies_once), f"{name}: processed-events table {has_record}, @handles {applies_once}"
    if store is not None:
        assert ("processed_events" in store.declarative_base.metadata.tables) == bool(applies_once)


@pytest.mark.parametrize("name", SERVICES_WITH_DATABASE)
def test_the_migrations_make_the_tables_the_models_declare(name, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(name, engine)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(store_of(name).declarative_base.metadata.tables)
