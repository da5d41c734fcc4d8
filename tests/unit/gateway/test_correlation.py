"""The gateway's correlation id: from X-Request-ID or made, returned, and put on the RPCs it makes."""
import re
from types import SimpleNamespace

from gateway.rpc import RpcPool
from services.common import logs


def test_the_response_carries_the_clients_request_id_or_a_new_one(client, rpc):
    rpc.tickets.list_tickets = lambda *a: {"tickets": [], "next": None}
    assert client.get("/api/tickets", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/api/tickets").headers["X-Request-ID"])
    assert client.get("/api/nowhere").headers["X-Request-ID"]  # even on errors


def test_the_services_hear_the_request_id(client, rpc):
    seen = []
    rpc.tickets.list_tickets = lambda *a: seen.append(logs.correlation_id()) or {"tickets": [], "next": None}
    client.get("/api/tickets", headers={"X-Request-ID": "abc-2"})
    assert seen == ["abc-2"]
    assert logs.correlation_id() is None  # nothing left behind for the thread's next request


def test_the_pool_puts_the_id_into_the_context_data_nameko_sends():
    context = SimpleNamespace(context_data={})
    with logs.scope(correlation_id="abc-3"):
        RpcPool._carry_correlation_id(context)
    assert context.context_data == {"correlation_id": "abc-3"}
    RpcPool._carry_correlation_id(context)  # a later call without one does not reuse it
    assert context.context_data == {}
