"""How `ticketing up` prints JSON log lines for people and machines, and how `ticketing status` reads."""
import json

from ticketing import logview, status

LINE = json.dumps({"time": "2026-12-01T10:15:54.760Z", "level": "INFO", "component": "orders",
                   "logger": "services.orders.service", "message": "order o1 cancelled", "correlation_id": "c1",
                   "order_id": "o1"})


def test_people_get_time_level_message_and_ids_under_the_component():
    assert logview.human("orders", LINE) == ["      orders | 10:15:54.760 INFO  order o1 cancelled  [cid=c1 order=o1]"]


def test_the_web_process_names_the_app_that_logged():
    line = json.dumps({"time": "2026-12-01T10:15:54.760Z", "level": "INFO", "component": "gateway", "message": "x"})
    assert logview.human("web", line)[0].startswith("     gateway | ")


def test_a_traceback_follows_indented_and_other_output_passes_as_it_is():
    line = json.dumps({"time": "2026-12-01T10:15:54.760Z", "level": "ERROR", "message": "boom",
                       "traceback": "Traceback (most recent call last):\n  File x\nRuntimeError: boom"})
    printed = logview.human("tickets", line)
    assert printed[1:] == ["     tickets |     Traceback (most recent call last):", "     tickets |       File x",
                           "     tickets |     RuntimeError: boom"]
    assert logview.human("tickets", "plain text") == ["     tickets | plain text"]


def test_a_message_of_several_lines_stays_under_its_component():
    line = json.dumps({"time": "2026-12-01T10:15:54.760Z", "level": "INFO", "component": "payments",
                       "message": "Running upgrade a -> b, one\ntwo", "order_id": "o1"})
    assert logview.human("payments", line) == ["    payments | 10:15:54.760 INFO  Running upgrade a -> b, one  [order=o1]",
                                               "    payments |     two"]


def test_machines_get_json_lines_unchanged_and_the_rest_wrapped():
    assert logview.as_json("orders", LINE) == [LINE]
    (wrapped,) = logview.as_json("orders", "plain text")
    assert json.loads(wrapped)["message"] == "plain text" and json.loads(wrapped)["component"] == "orders"


def test_status_shows_readiness_queues_and_the_last_errors():
    report = {
        "components": {
            "orders": {"ready": True, "detail": "", "errors": [
                {"time": "2026-12-01T10:00:00.000Z", "level": "ERROR", "message": "boom", "correlation_id": "c1",
                 "component": "orders"}]},
            "tickets": {"ready": False, "detail": "broker: unreachable: OSError", "errors": []},
        },
        "queues": {"source": "management API", "expirations": {"holding": 4, "due": 0},
                   "parked": {"evt-orders--on_x.parked": 2}},
    }
    text = status.render(report)
    assert "orders         yes" in text and "tickets        NO     broker: unreachable: OSError" in text
    assert "pending expirations: 4 in holding queues" in text
    assert "parked messages: 2" in text and "evt-orders--on_x.parked: 2" in text
    assert "2026-12-01T10:00:00.000Z orders ERROR boom [cid=c1]" in text


def test_status_indents_the_further_lines_of_an_error():
    report = {"components": {"orders": {"ready": True, "detail": "", "errors": [
        {"time": "2026-12-01T10:00:00.000Z", "level": "ERROR", "message": "parking event: 2 errors\nid\n  missing",
         "component": "orders"}]}}, "queues": {"expirations": {"holding": 0, "due": 0}, "parked": {}}}
    assert status.render(report).splitlines()[-3:] == ["  2026-12-01T10:00:00.000Z orders ERROR parking event: 2 errors",
                                                       "      id", "        missing"]


def test_ticketing_up_json_prints_one_json_object_per_line(capsys, monkeypatch):
    from ticketing import supervisor

    monkeypatch.setattr(supervisor, "JSON_OUTPUT", True)
    supervisor.show("orders", LINE)
    supervisor.show("orders", "not json")
    supervisor.emit("ticketing", "ready")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["order o1 cancelled", "not json", "ready"]
