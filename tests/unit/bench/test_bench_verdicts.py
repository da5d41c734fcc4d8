"""The benchmark's arithmetic: crowd summaries and the PASS/FAIL of each target."""
from bench import crowd
from bench.suite import TARGETS, verdicts


def test_crowd_summary_counts_statuses_and_connection_errors_apart():
    outcomes = [crowd.Outcome(status=201, seconds=0.1), crowd.Outcome(status=409, seconds=0.2),
                crowd.Outcome(status=409, seconds=0.3), crowd.Outcome(error="ConnectionResetError")]
    summary = crowd.summary(outcomes)
    assert summary["statuses"] == {"201": 1, "409": 2}
    assert summary["errors"] == {"ConnectionResetError": 1}
    assert summary["max_s"] == 0.3


def test_crowd_builds_a_request_with_its_body_length():
    raw = crowd.build_request("h", "POST", "/api/orders", {"ticketId": "a" * 32}, {"Authorization": "Bearer t"})
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/orders HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"Connection: close" in head and b"Authorization: Bearer t" in head


def flash_row(**changes):
    row = {"statuses": {"201": 1, "409": 400, "503": 99}, "errors": {}, "p99_s": 0.8, "tickets": 1,
           "tickets_sold_once": 1, "tickets_sold_more_than_once": 0, "tickets_unsold": 0, "web_restarted": False}
    return {**row, **changes}


def verdict_of(results, startswith):
    return next(v for name, _m, v in verdicts(results) if name.startswith(startswith))


def test_a_flash_sale_passes_only_with_one_sale_per_ticket_and_no_500_error_or_restart():
    assert verdict_of({"flash": {"x": flash_row()}}, "flash x") == "PASS"
    for bad in (flash_row(statuses={"201": 1, "500": 3}), flash_row(errors={"timeout": 1}),
                flash_row(tickets_sold_more_than_once=1), flash_row(tickets_sold_once=0, tickets_unsold=1),
                flash_row(p99_s=TARGETS["flash_p99_s"] + 0.1), flash_row(web_restarted=True)):
        assert verdict_of({"flash": {"x": bad}}, "flash x") == "FAIL", bad


def test_reads_are_judged_against_the_floor_of_the_same_run():
    def reads(rps):
        return {"reads": {"floor c=32": {"rps": 100.0, "p99_ms": 10},
                          "GET /api/tickets/:id c=32": {"rps": rps, "p99_ms": 10}}}

    assert verdict_of(reads(95.0), "GET /api/tickets/:id c=32 >=") == "PASS"
    assert verdict_of(reads(85.0), "GET /api/tickets/:id c=32 >=") == "FAIL"


def test_orders_fail_when_not_every_answer_is_a_201_or_the_system_does_not_drain():
    row = {"rps": 300.0, "p99_ms": 50, "statuses": {"201": 3000}, "drain_s": 1.0}
    assert verdict_of({"writes": {"POST /api/orders c=8": row}}, "POST /api/orders c=8 >=") == "PASS"
    assert verdict_of({"writes": {"POST /api/orders c=8": {**row, "statuses": {"201": 10, "409": 1}}}},
                      "POST /api/orders c=8 >=") == "FAIL"
    assert verdict_of({"writes": {"POST /api/orders c=8": {**row, "drain_s": None}}}, "POST /api/orders drained") == "FAIL"
