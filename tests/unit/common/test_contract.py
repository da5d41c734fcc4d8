"""The event contract is wired end to end: every event has its publisher and a consumer.

docs/adding-a-feature.md relies on these checks: a new event that nobody
publishes or nobody consumes, or a handler listening on the wrong exchange,
fails here before it fails in production.
"""
import ast
import importlib
from pathlib import Path

import pytest
from nameko.events import EventHandler

from services.common import events
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


def published_events() -> dict[str, set[str]]:
    """{event name: {publishing service}}: the services whose code emits or dispatches ``events.X``,
    or names it as the event of a row of its state machine (``Transition(..., events.X)``)."""
    constants = {key: value for key, value in vars(events).items() if isinstance(value, str) and value in events.PAYLOADS}
    found: dict[str, set[str]] = {}
    for name in SERVICES:
        for path in (ROOT / "services" / name).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("emit", "dispatch") and node.args
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
