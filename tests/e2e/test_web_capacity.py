"""The web process under a rush: 1,000 idle keep-alive connections + 1,000 buyers at once for one ticket.

The web process must hold all 2,000 connections (past the 1,024 file
descriptors ``select()`` can watch), never die or restart, and answer every
buyer: one 201, a 409 for the others it served, a quick 503 with Retry-After
for those over its capacity, never a 500 or a dropped connection.
"""
from urllib.parse import urlparse

import pytest
import requests

from bench.crowd import IdleConnections, build_request, rush, summary
from tests.e2e.orders_support import list_ticket, signup, wait_for
from ticketing.web import raise_fd_limit

pytestmark = pytest.mark.e2e

IDLE, BUYERS = 1000, 1000


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


def orderable(app, seller, ticket_id) -> bool:
    """The seller's own order is refused with 409 once orders knows the ticket (404 before): no side effect."""
    return seller.post(f"{app.url}/api/orders", json={"ticketId": ticket_id}).status_code == 409


def test_the_web_process_survives_2000_connections(app):
    assert raise_fd_limit() > IDLE + BUYERS + 100, "the test process itself needs the descriptors"
    seller = signup(app, "seller")
    tokens = [signup(app, f"buyer{i}").cookies["ticketing_access"] for i in range(4)]
    ticket = list_ticket(app, seller)
    wait_for(lambda: orderable(app, seller, ticket["id"]), timeout=10)
    web_pids = sorted(app.component_pids("web"))
    assert len(web_pids) >= 2, "gunicorn's arbiter and at least one worker"

    url = urlparse(app.url)
    host, port = url.hostname, url.port
    idle = IdleConnections(host, port, IDLE)
    try:
        assert len(idle.sockets) == IDLE, idle.errors
        orders = [build_request(host, "POST", "/api/orders", {"ticketId": ticket["id"]},
                                {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}) for i in range(BUYERS)]
        outcomes = rush(host, port, orders, timeout=30)
        kept = idle.still_open()
    finally:
        idle.close()

    result = summary(outcomes)
    print("rush:", result, "idle connections still served:", kept, idle.errors)
    assert result["errors"] == {}, result
    assert set(result["statuses"]) <= {"201", "409", "503", "429"}, result
    assert result["statuses"].get("201") == 1, result
    busy = [o for o in outcomes if o.status == 503]
    for outcome in busy:
        assert int(outcome.headers["retry-after"]) >= 1  # the web tier's own 503 says 1, a service's says more
        assert outcome.headers["content-type"].startswith("application/json")
        assert "message" in requests.models.complexjson.loads(outcome.body)["errors"][0]
    assert kept == IDLE, f"only {kept} of the idle keep-alive connections were still answered"
    assert sorted(app.component_pids("web")) == web_pids, "the web process restarted"
    assert "web exited" not in app.log()
    # once the rush has drained (the services answer what was admitted), the site serves again
    wait_for(lambda: requests.get(f"{app.url}/api/tickets/{ticket['id']}", timeout=5).status_code == 200,
             timeout=15, what="the site serving again after the rush")
