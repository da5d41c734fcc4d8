"""Per worker: the correlation id is taken or made and passed on, ids are bound, RPCs and events counted;
the outbox keeps the id with the row and publishes it; retries and parked messages are counted."""
from __future__ import annotations

import types

from nameko.events import EventHandler as NamekoEventHandler
from nameko.rpc import Rpc

from services.common import handlers, logs, metrics, store
from services.common.errors import NotFound
from services.common.telemetry import Telemetry


class Orders:
    def get_order(self, order_id, user_id=None):
        pass


class WorkerCtx:
    """What Telemetry reads of nameko's WorkerContext (hashable, like it)."""

    def __init__(self, entrypoint, args=(), data=None):
        self.entrypoint, self.args, self.kwargs, self.data = entrypoint, args, {}, dict(data or {})
        self.service, self.service_name = Orders(), "orders"


worker_ctx = WorkerCtx


def rpc(method="get_order"):
    entrypoint = Rpc.__new__(Rpc)
    entrypoint.method_name = method
    return entrypoint


def sample(metric, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(metric, labels) or 0.0


def test_a_worker_logs_with_the_callers_correlation_id_and_its_arguments_ids():
    telemetry = Telemetry()
    telemetry.setup()
    ctx = worker_ctx(rpc(), args=("o1", "u1"), data={"correlation_id": "from-gateway"})
    before = sample("ticketing_rpc_duration_seconds_count", service="orders", method="get_order", outcome="refused")
    telemetry.worker_setup(ctx)
    assert logs.current() == {"correlation_id": "from-gateway", "order_id": "o1", "user_id": "u1"}
    telemetry.worker_result(ctx, None, (NotFound, NotFound("Order not found"), None))
    telemetry.worker_teardown(ctx)
    assert logs.current() == {}
    assert sample("ticketing_rpc_duration_seconds_count", service="orders", method="get_order",
                  outcome="refused") == before + 1


def test_a_worker_without_one_makes_one_and_passes_it_on():
    telemetry = Telemetry()
    telemetry.setup()
    ctx = worker_ctx(rpc(), args=("o1",))
    telemetry.worker_setup(ctx)
    made = logs.correlation_id()
    assert made and ctx.data["correlation_id"] == made  # nameko sends context data on with its calls
    telemetry.worker_teardown(ctx)


def test_an_event_worker_binds_the_events_ids_and_is_counted():
    telemetry = Telemetry()
    telemetry.setup()
    entrypoint = NamekoEventHandler.__new__(NamekoEventHandler)
    entrypoint.event_type, entrypoint.method_name = "order:cancelled", "on_order_cancelled"
    ctx = worker_ctx(entrypoint, args=({"eventId": "e1", "id": "o1", "ticket": {"id": "t1"}},), data={})
    before = sample("ticketing_events_consumed_total", service="orders", event="order:cancelled", outcome="ok")
    telemetry.worker_setup(ctx)
    assert logs.current()["order_id"] == "o1" and logs.current()["event_id"] == "e1"
    telemetry.worker_result(ctx, None, None)
    telemetry.worker_teardown(ctx)
    assert sample("ticketing_events_consumed_total", service="orders", event="order:cancelled", outcome="ok") == before + 1


def test_the_outbox_keeps_the_correlation_id_and_publishes_it_in_the_header(make_store):
    tx = make_store("orders").begin()
    with logs.scope(correlation_id="c42"):
        tx.emit("order:cancelled", id="a" * 32, version=1, ticket={"id": "b" * 32})
    (row,) = tx.outbox_rows
    assert row.correlation_id == "c42"

    published = []
    provider = store.Store.__new__(store.Store)
    provider.publisher = types.SimpleNamespace(publish=published.extend)
    provider.exchange, provider.container = object(), types.SimpleNamespace(service_name="orders")
    before = sample("ticketing_events_published_total", service="orders", event="order:cancelled")
    provider._publish(row)  # the same path for the post-commit publish and the relay
    assert published[0].headers == {"nameko.correlation_id": "c42"}
    assert sample("ticketing_events_published_total", service="orders", event="order:cancelled") == before + 1


def test_retries_and_parked_messages_are_counted():
    handler = handlers.EventHandler.__new__(handlers.EventHandler)
    handler.max_attempts = 3
    handler.retry_for, handler.retry_max_delay = 3600.0, 60.0
    handler.queue = types.SimpleNamespace(name="evt-orders--on_x")
    handler.delays = types.SimpleNamespace(send_later=lambda *a, **k: None, park=lambda *a, **k: None)
    queue = handler.queue.name
    retries, parked = (sample("ticketing_event_retries_total", queue=queue),
                       sample("ticketing_events_parked_total", queue=queue))
    message = types.SimpleNamespace(headers={}, payload={})
    handler._retry_or_park(message, (RuntimeError, RuntimeError("x"), None))
    message.headers = {handlers.ATTEMPT_HEADER: 3, handlers.FAILURES_HEADER: 2}  # the third failure parks it
    handler._retry_or_park(message, (RuntimeError, RuntimeError("x"), None))
    assert sample("ticketing_event_retries_total", queue=queue) == retries + 1
    assert sample("ticketing_events_parked_total", queue=queue) == parked + 1
