"""Log lines: one JSON object each, the correlation id and ids of their context, expected errors at INFO."""
from __future__ import annotations

import json
import logging
import types

import eventlet
import pytest

from services.common import logs
from services.common.errors import Conflict, NotFound, ServiceUnavailable


@pytest.fixture(autouse=True)
def clean_context():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # as LOG_LEVEL's default; expected errors are dropped below INFO
    logs.reset()
    yield
    logs.reset()
    root.setLevel(level)


def make_record(msg="hello %s", args=("world",), level=logging.INFO, exc=None, name="services.orders.service",
                worker=None):
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except Exception as caught:  # noqa: BLE001 - to get a real traceback
            exc_info = (type(caught), caught, caught.__traceback__)
    if worker is not None:
        msg, args = "error handling worker %s: %s", (worker, exc)
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def render(record) -> dict:
    for flt in (logs.ExpectedErrors(), logs.ContextFilter("orders")):
        if not flt.filter(record):
            return {}
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text  # one line, whatever the message or traceback
    return json.loads(text)


def fake_worker(service="orders", method="create_order"):
    return types.SimpleNamespace(service_name=service, entrypoint=types.SimpleNamespace(method_name=method))


def test_a_line_has_time_level_component_message_and_the_ids_of_its_context():
    with logs.scope(correlation_id="c1", order_id="o1"):
        logs.bind(ticket_id="t1")
        line = render(make_record())
    assert line["message"] == "hello world" and line["level"] == "INFO" and line["component"] == "orders"
    assert line["time"].endswith("Z") and line["logger"] == "services.orders.service"
    assert (line["correlation_id"], line["order_id"], line["ticket_id"]) == ("c1", "o1", "t1")
    assert "user_id" not in line


def test_explicit_ids_win_over_the_context():
    with logs.scope(correlation_id="c1", order_id="o1"):
        record = make_record()
        record.order_id = "o2"
        assert render(record)["order_id"] == "o2"


def test_an_unexpected_error_keeps_its_level_and_traceback_in_one_line():
    line = render(make_record(level=logging.ERROR, exc=RuntimeError("boom"), worker=fake_worker()))
    assert line["level"] == "ERROR" and line["error"] == "RuntimeError: boom"
    assert "Traceback" in line["traceback"]


@pytest.mark.parametrize("exc", [NotFound("Order not found"), Conflict("Ticket is already reserved")])
def test_an_expected_error_is_one_info_line_without_a_traceback(exc):
    line = render(make_record(level=logging.ERROR, exc=exc, worker=fake_worker()))
    assert line["level"] == "INFO"
    assert line["message"] == f"orders.create_order answered {exc.status}: {exc.message}"
    assert line["status"] == exc.status
    assert "traceback" not in line and "error" not in line


def test_expected_errors_are_dropped_when_the_level_is_above_info():
    logging.getLogger().setLevel(logging.WARNING)
    assert render(make_record(level=logging.ERROR, exc=NotFound(), worker=fake_worker())) == {}


def test_an_unavailable_dependency_is_not_an_expected_error():
    line = render(make_record(level=logging.WARNING, exc=ServiceUnavailable(), worker=fake_worker()))
    assert line["level"] == "WARNING" and "traceback" in line


def test_a_503_the_entrypoint_declares_expected_is_one_warning_line_without_a_traceback():
    record = make_record(level=logging.WARNING, exc=ServiceUnavailable("Could not confirm yet"), worker=fake_worker())
    record.msg = "(expected) " + record.msg  # as nameko words it for a declared exception
    line = render(record)
    assert line["level"] == "WARNING" and line["status"] == 503
    assert line["message"] == "orders.create_order answered 503: Could not confirm yet"
    assert "traceback" not in line and "error" not in line


def test_an_early_event_is_no_warning_with_a_traceback_only_the_handlers_retry_line():
    from services.common.handlers import NotYetApplicable

    early = NotYetApplicable("ticket t1 v3 before its v1")
    record = make_record(level=logging.WARNING, exc=early, worker=fake_worker("orders", "on_ticket_updated"),
                         name="nameko.containers")
    record.msg = "(expected) " + record.msg
    assert render(record) == {}
    retry = make_record("event failed (%s: %r); retrying in %d ms", ("q attempt 1", early, 1000))
    assert render(retry)["level"] == "INFO"


def test_each_green_thread_has_its_own_context():
    seen = {}

    def worker(cid):
        with logs.scope(correlation_id=cid):
            eventlet.sleep(0.01)  # the other one runs meanwhile
            seen[cid] = logs.correlation_id()

    threads = [eventlet.spawn(worker, cid) for cid in ("a", "b", "c")]
    for thread in threads:
        thread.wait()
    assert seen == {"a": "a", "b": "b", "c": "c"}
    assert logs.correlation_id() is None


def test_request_ids_from_clients_are_kept_only_when_they_are_sane_tokens():
    assert logs.accept_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "has space", "x" * 65, 'quote"', "new\nline"):
        made = logs.accept_request_id(bad)
        assert made != bad and len(made) == 32


def test_ids_are_read_from_events_by_their_type():
    order = {"eventId": "e1", "id": "o1", "userId": "u1", "ticket": {"id": "t1"}}
    assert logs.ids_from_payload(order, "order:created") == {"event_id": "e1", "order_id": "o1", "user_id": "u1",
                                                              "ticket_id": "t1"}
    assert logs.ids_from_payload({"eventId": "e2", "id": "t2", "orderId": "o2"}, "ticket:updated") == {
        "event_id": "e2", "ticket_id": "t2", "order_id": "o2"}
    assert logs.ids_from_payload({"orderId": "o3", "expiresAt": "…"}) == {"order_id": "o3"}
    assert logs.ids_from_payload("not a dict") == {}


def test_headers_carry_the_correlation_id_for_messages_published_by_hand():
    assert logs.headers() == {}
    with logs.scope(correlation_id="c9"):
        assert logs.headers() == {"nameko.correlation_id": "c9"}


def test_recent_errors_keep_warnings_and_errors_without_tracebacks():
    recent = logs.RecentErrors(capacity=2)
    logger = logging.getLogger("tests.recent")
    logger.addHandler(recent)
    logger.propagate = False
    try:
        for n in range(3):
            try:
                raise RuntimeError("x")
            except RuntimeError:
                logger.exception("problem %d", n)
        logger.info("fine")
    finally:
        logger.removeHandler(recent)
    assert [e["message"] for e in recent.latest()] == ["problem 1", "problem 2"]
    assert all("traceback" not in e for e in recent.latest())


def test_the_recent_errors_of_processes_sharing_a_directory_are_read_together(tmp_path, monkeypatch):
    """gunicorn's workers log; the master answers /errors for all of them (the web side port)."""
    import multiprocessing

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    master = logs.RecentErrors()
    logger = logging.getLogger("tests.recent.shared")
    logger.propagate = False
    logger.addHandler(master)
    try:
        logger.warning("the master's own")

        def worker(n):
            logger.error("worker %d failed", n)  # the handler it inherited, in a process of its own

        for n in (1, 2):
            child = multiprocessing.get_context("fork").Process(target=worker, args=(n,))
            child.start()
            child.join(10)
            assert child.exitcode == 0
    finally:
        logger.removeHandler(master)
    messages = [e["message"] for e in master.latest()]
    assert sorted(messages) == ["the master's own", "worker 1 failed", "worker 2 failed"]
