"""/api/orders against a fake orders service: parsing, the calls, error mapping, OpenAPI."""
import pytest

from gateway import openapi
from services.common.errors import Conflict, Forbidden, NotFound

from .conftest import errors_of

TICKET, ORDER = "c" * 32, "d" * 32


def an_order(user_id="a" * 32):
    return {"id": ORDER, "status": "created", "userId": user_id, "expiresAt": "2030-01-01T00:15:00.000Z",
            "version": 0, "ticket": {"id": TICKET, "title": "Concert", "price": "12.50"}}


@pytest.mark.parametrize("method, path", [("get", "/api/orders"), ("post", "/api/orders"),
                                          ("get", f"/api/orders/{ORDER}"), ("delete", f"/api/orders/{ORDER}")])
def test_orders_need_sign_in(client, rpc, method, path):
    assert getattr(client, method)(path, json={"ticketId": TICKET}).status_code == 401 and rpc.calls == []


def test_create_passes_the_email_from_the_token_and_returns_price_as_a_number(client, rpc, signed_in):
    user = signed_in()
    rpc.orders.create_order = lambda user_id, email, ticket_id: an_order(user_id)
    response = client.post("/api/orders", json={"ticketId": TICKET})
    assert response.status_code == 201
    assert response.get_json()["ticket"]["price"] == 12.5
    assert rpc.calls == [("orders.create_order", (user["id"], user["email"], TICKET))]


@pytest.mark.parametrize("body", [{}, {"ticketId": "nope"}, {"ticketId": 5}])
def test_a_bad_ticket_id_is_400_with_the_field(client, rpc, signed_in, body):
    signed_in()
    response = client.post("/api/orders", json=body)
    assert response.status_code == 400 and errors_of(response)[0]["field"] == "ticketId" and rpc.calls == []


@pytest.mark.parametrize("error, status", [(NotFound("Ticket not found"), 404),
                                           (Conflict("Ticket is already reserved"), 409),
                                           (Conflict("You cannot buy your own ticket"), 409)])
def test_create_errors(client, rpc, signed_in, error, status):
    signed_in()

    def create(*args):
        raise error

    rpc.orders.create_order = create
    response = client.post("/api/orders", json={"ticketId": TICKET})
    assert response.status_code == status and errors_of(response)[0]["message"] == error.message


def test_list_show_and_cancel(client, rpc, signed_in):
    user = signed_in()
    rpc.orders.list_user_orders = lambda user_id: [an_order(user_id)]
    rpc.orders.get_user_order = lambda user_id, order_id: an_order(user_id)
    rpc.orders.cancel_user_order = lambda user_id, order_id: {**an_order(user_id), "status": "cancelled"}
    assert client.get("/api/orders").get_json()[0]["ticket"]["price"] == 12.5
    assert client.get(f"/api/orders/{ORDER}").get_json()["id"] == ORDER
    cancelled = client.delete(f"/api/orders/{ORDER}")
    assert cancelled.status_code == 204 and cancelled.data == b""
    assert rpc.calls == [("orders.list_user_orders", (user["id"],)), ("orders.get_user_order", (user["id"], ORDER)),
                         ("orders.cancel_user_order", (user["id"], ORDER))]


def test_malformed_ids_in_the_path_are_404_without_a_call(client, rpc, signed_in):
    signed_in()
    assert client.get("/api/orders/nope").status_code == 404
    assert client.delete("/api/orders/nope").status_code == 404
    assert rpc.calls == []


@pytest.mark.parametrize("error, status", [(Forbidden("This order is not yours"), 403),
                                           (Conflict("Cannot cancel a completed order"), 409)])
def test_cancel_errors(client, rpc, signed_in, error, status):
    signed_in()

    def cancel(*args):
        raise error

    rpc.orders.cancel_user_order = cancel
    assert client.delete(f"/api/orders/{ORDER}").status_code == status


def test_openapi_describes_the_routes():
    paths = openapi.document()["paths"]
    assert {"201", "400", "401", "404", "409"} <= set(map(str, paths["/api/orders"]["post"]["responses"]))
    assert {"200", "401", "403", "404"} <= set(map(str, paths["/api/orders/{id}"]["get"]["responses"]))
    assert {"204", "401", "403", "404", "409"} <= set(map(str, paths["/api/orders/{id}"]["delete"]["responses"]))
    assert "200" in set(map(str, paths["/api/orders"]["get"]["responses"]))
