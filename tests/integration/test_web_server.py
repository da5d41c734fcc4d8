"""The web server (gunicorn + ticketing.web's worker) on a tiny app: admission control and idle connections.

One worker with two threads and room for four admitted requests makes the
limits small enough to cross with a handful of clients.
"""
import socket

import pytest
import requests

from bench.crowd import build_request, rush, summary
from services.common.net import free_port
from tests.support.processes import stop, wait_healthy

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.processes import ROOT

    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "2",
           "WEB_MAX_PENDING": "4", "WEB_QUEUE_TIMEOUT": "0.5", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "web.log"
    process = subprocess.Popen([sys.executable, "-m", "tests.support.slow_web"], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_healthy(f"http://127.0.0.1:{port}/api/ok", process, log)
    yield port, process
    stop(process)


def test_over_capacity_requests_get_a_quick_503_and_the_admitted_ones_are_served(server):
    port, process = server
    slow = build_request("127.0.0.1", "GET", "/api/sleep?s=2")
    outcomes = rush("127.0.0.1", port, [slow] * 20, timeout=20)

    result = summary(outcomes)
    assert result["errors"] == {}, result
    # two run at once; the two admitted behind them waited past WEB_QUEUE_TIMEOUT; the other 16 never got in
    assert result["statuses"] == {"200": 2, "503": 18}, result
    rejected_at_the_door = sorted(o.seconds for o in outcomes if o.status == 503)[:16]
    assert max(rejected_at_the_door) < 1.0, rejected_at_the_door
    busy = next(o for o in outcomes if o.status == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["content-type"] == "application/json"
    assert requests.get(f"http://127.0.0.1:{port}/api/ok", timeout=5).status_code == 200
    assert process.poll() is None


def test_silent_connections_do_not_hold_the_threads(server):
    port, process = server
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        response = requests.get(f"http://127.0.0.1:{port}/api/ok", timeout=3)
        assert response.status_code == 200
    finally:
        for sock in silent:
            sock.close()
    assert process.poll() is None


def test_idle_connections_closing_at_once_leave_no_503_behind(server):
    """The end of a rush: a crowd of idle keep-alive connections closes together. They must not take
    the places of admitted requests (4 here), or the next real request is turned away with a 503."""
    port, process = server
    for _ in range(3):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        answered = [requests.get(f"http://127.0.0.1:{port}/api/ok", timeout=3).status_code]  # all accepted
        for sock in idle:
            sock.close()
        answered += [requests.get(f"http://127.0.0.1:{port}/api/ok", timeout=3).status_code for _ in range(5)]
        assert answered == [200] * 6, answered
    assert process.poll() is None
