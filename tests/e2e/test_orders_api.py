"""/api/orders end to end through ``ticketing up`` (PostgreSQL, RabbitMQ), over HTTP."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.orders_support import EventTap, list_ticket, on_sale, order, signup, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


@pytest.fixture
def tap(app):
    tap = EventTap(app.env["AMQP_URI"], {"orders": ["order:created", "order:cancelled"],
                                         "tickets": ["ticket:updated"]})
    yield tap
    tap.close()


def assert_error(response, status, message=None, field=None):
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error.get("field") == field
    if message:
        assert error["message"] == message


def test_orders_need_a_signed_in_user(app):
    assert_error(requests.get(f"{app.url}/api/orders"), 401)
    assert_error(requests.post(f"{app.url}/api/orders", json={"ticketId": "a" * 32}), 401)
    assert_error(requests.delete(f"{app.url}/api/orders/{'a' * 32}"), 401)


def test_create_rules(app):
    seller, buyer = signup(app, "seller"), signup(app, "buyer")
    assert_error(buyer.post(f"{app.url}/api/orders", json={}), 400, field="ticketId")
    assert_error(buyer.post(f"{app.url}/api/orders", json={"ticketId": "nope"}), 400, field="ticketId")
    assert_error(buyer.post(f"{app.url}/api/orders", json={"ticketId": "f" * 32}), 404)
    ticket = list_ticket(app, seller)
    wait_for(lambda: order(app, seller, ticket["id"]).status_code == 409)
    assert_error(order(app, seller, ticket["id"]), 409, "You cannot buy your own ticket")


def test_reserve_then_the_ticket_is_taken_and_off_sale_until_cancelled(app, tap):
    seller, alice, bob = signup(app, "seller"), signup(app, "alice"), signup(app, "bob")
    ticket = list_ticket(app, seller, price=25.5)
    created = order(app, alice, ticket["id"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "created" and body["userId"] == alice.user["id"] and body["version"] == 0
    assert body["ticket"] == {"id": ticket["id"], "title": "Concert", "price": 25.5}
    assert body["expiresAt"].endswith("Z")

    assert_error(order(app, bob, ticket["id"]), 409, "Ticket is already reserved")
    (_, event), = tap.wait("order:created", id=body["id"])
    assert event["userEmail"] == alice.user["email"] and event["expiresAt"] == body["expiresAt"]
    assert event["ticket"] == {"id": ticket["id"], "price": "25.50"}

    # the tickets service reacts: reserved, not listed, not editable
    wait_for(lambda: requests.get(f"{app.url}/api/tickets/{ticket['id']}").json()["orderId"] == body["id"])
    assert not on_sale(app, ticket["id"])
    assert_error(seller.put(f"{app.url}/api/tickets/{ticket['id']}", json={"title": "x", "price": 1}),
                 409, "Cannot edit a reserved ticket")

    assert_error(bob.delete(f"{app.url}/api/orders/{body['id']}"), 403)
    cancelled = alice.delete(f"{app.url}/api/orders/{body['id']}")
    assert cancelled.status_code == 204 and cancelled.content == b""
    assert alice.delete(f"{app.url}/api/orders/{body['id']}").status_code == 204  # already cancelled: no-op
    tap.wait("order:cancelled", id=body["id"])
    shown = alice.get(f"{app.url}/api/orders/{body['id']}").json()
    assert shown["status"] == "cancelled" and shown["version"] == 1
    wait_for(lambda: on_sale(app, ticket["id"]))
    assert order(app, bob, ticket["id"]).status_code == 201


def test_list_shows_only_mine_oldest_first_and_show_guards_others(app):
    seller, alice, bob = signup(app, "seller"), signup(app, "alice"), signup(app, "bob")
    tickets = [list_ticket(app, seller, title=f"T{i}") for i in range(3)]
    mine = [order(app, alice, tickets[0]["id"]).json(), order(app, alice, tickets[1]["id"]).json()]
    theirs = order(app, bob, tickets[2]["id"]).json()
    listed = alice.get(f"{app.url}/api/orders").json()
    assert [o["id"] for o in listed] == [o["id"] for o in mine]
    assert [o["ticket"]["title"] for o in listed] == ["T0", "T1"]
    assert alice.get(f"{app.url}/api/orders/{mine[0]['id']}").json() == mine[0]
    assert_error(alice.get(f"{app.url}/api/orders/{theirs['id']}"), 403)
    assert_error(alice.get(f"{app.url}/api/orders/{'f' * 32}"), 404)
    assert_error(alice.get(f"{app.url}/api/orders/not-an-id"), 404)
    assert_error(alice.delete(f"{app.url}/api/orders/not-an-id"), 404)


def test_fifty_buyers_race_for_one_ticket_and_exactly_one_wins(app):
    seller = signup(app, "seller")
    buyers = [signup(app, f"racer{i}") for i in range(50)]
    ticket = list_ticket(app, seller)
    # wait until orders knows the ticket, without ordering it
    wait_for(lambda: order(app, seller, ticket["id"], timeout=0).status_code == 409)
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda b: b.post(f"{app.url}/api/orders", json={"ticketId": ticket["id"]}),
                                  buyers))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 49, codes
    assert {r.json()["errors"][0]["message"] for r in responses if r.status_code == 409} == {
        "Ticket is already reserved"}
