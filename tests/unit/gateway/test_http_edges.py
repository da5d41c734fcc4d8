"""Every bad input gets a 4xx with the error shape; never a 500 or a stack trace."""
import pytest
from nameko.exceptions import RemoteError, RpcTimeout

from services.common.errors import ServiceUnavailable

from .conftest import errors_of

TICKET = {"id": "t" * 32, "title": "Show", "price": "12.50", "userId": "a" * 32, "version": 0, "orderId": None}


def test_unknown_api_routes_are_json_404(client):
    response = client.get("/api/nope")
    assert response.status_code == 404 and errors_of(response) == [{"message": "Not found"}]


def test_wrong_method_is_json_405(client):
    assert errors_of(client.delete("/api/tickets"))[0]["message"] == "Method not allowed"


@pytest.mark.parametrize("data,field", [
    ("{not json", None), ("[1, 2]", None), ('"text"', None), ("", "title"), ('{"title": "x"}', "price"),
    ('{"title": 1, "price": 1}', "title"), ('{"title": "x", "price": "1"}', "price"),
    ('{"title": "x", "price": 1.001}', "price"), ('{"title": "x", "price": 0}', "price"),
    ('{"title": "x", "price": 1000000.01}', "price"), ('{"title": "  ", "price": 1}', "title"),
])
def test_bad_ticket_bodies_are_400_with_field(client, signed_in, data, field):
    signed_in()
    response = client.post("/api/tickets", data=data, content_type="application/json")
    assert response.status_code == 400
    error = errors_of(response)[0]
    assert error.get("field") == field and error["message"]


def test_bodies_over_one_mebibyte_are_413(client, signed_in):
    signed_in()
    response = client.post("/api/tickets", data="x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413 and "too large" in errors_of(response)[0]["message"]


def test_a_service_that_does_not_answer_is_503(client, rpc):
    def slow(*args):
        raise ServiceUnavailable()

    rpc.tickets.list_tickets = slow
    response = client.get("/api/tickets")
    assert response.status_code == 503 and errors_of(response)[0]["message"]


def test_an_unexpected_service_failure_is_a_plain_500(client, rpc):
    def broken(*args):
        raise RemoteError("KeyError", "secret internals")

    rpc.tickets.list_tickets = broken
    response = client.get("/api/tickets")
    assert response.status_code == 500
    assert errors_of(response) == [{"message": "Something went wrong"}]
    assert b"secret internals" not in response.data


def test_health_and_openapi(client):
    assert client.get("/api/healthz").get_json() == {"status": "ok"}
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")


def test_rpc_timeouts_become_503(app):
    from gateway.rpc import RpcPool

    pool = RpcPool({"AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"}, timeout=0.5)
    with pytest.raises(ServiceUnavailable):
        with pool.client():
            raise RpcTimeout()


def test_a_broker_node_closing_the_connection_becomes_503(app):
    """A cluster node that stops closes its connections (CONNECTION_FORCED): the client fails over on the next try."""
    from amqp.exceptions import ConnectionForced

    from gateway.rpc import RpcPool

    class Proxy:
        stopped = False

        def __init__(self):
            self.context_data = {}  # what the pool sends as headers (the correlation id)

        def stop(self):
            self.stopped = True

    pool, proxy = RpcPool({"AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"}, timeout=0.5), Proxy()
    pool._open = lambda: (proxy, proxy)
    with pytest.raises(ServiceUnavailable):
        with pool.client():
            raise ConnectionForced("broker forced connection closure with reason 'shutdown'")
    pool._calls.shutdown(wait=True)  # the proxy is stopped off the request's thread
    assert proxy.stopped, "a proxy whose connection was closed is dropped, not reused"
def test_every_request_the_gateway_sends_carries_its_deadline_rpc_timeout_away():
    """The caller's patience travels with the request (header nameko.deadline), so a service drops a
    request that waited in its queue longer than the gateway waited for the answer. A pooled proxy
    checked out again carries the new request's deadline, not its previous one."""
    import time

    from gateway.rpc import RpcPool
    from services.common.rpc import DEADLINE

    class Proxy:
        def __init__(self):
            self.context_data = {}  # what nameko sends as headers of every call

    pool, proxy = RpcPool({"AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"}, timeout=4.0), Proxy()
    pool._open = lambda: (proxy, proxy)
    sent = []
    for _ in range(2):
        before = time.time()
        with pool.client():
            sent.append(proxy.context_data[DEADLINE])
        assert before + 4.0 - 0.2 <= sent[-1] <= time.time() + 4.0
        time.sleep(0.3)
    assert sent[1] - sent[0] >= 0.3
    pool.close()


def test_a_503_tells_the_client_when_to_retry(client, rpc):
    def away(*args):
        raise ServiceUnavailable()

    rpc.tickets.list_tickets = away
    response = client.get("/api/tickets")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("exc_type", ["OperationalError", "AdminShutdown", "InterfaceError", "RpcTimeout"])
def test_a_service_that_lost_its_database_or_broker_is_503_not_500(client, rpc, exc_type):
    def broken(*args):
        raise RemoteError(exc_type, "terminating connection due to administrator command")

    rpc.tickets.list_tickets = broken
    response = client.get("/api/tickets")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert b"administrator" not in response.data


def test_a_broker_that_accepts_connections_but_never_answers_gives_503_within_the_rpc_timeout():
    """A vanished broker (packets dropped) would keep kombu's handshake waiting ~12 s."""
    import socket
    import time

    from gateway.rpc import RpcPool

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        pool = RpcPool({"AMQP_URI": f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/"}, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            with pool.client() as proxy:
                proxy.tickets.list_tickets()
        assert time.monotonic() - started < 1.0
    finally:
        silent.close()
