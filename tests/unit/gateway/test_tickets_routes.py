from services.common.errors import Conflict, Forbidden, NotFound

from .conftest import errors_of

TICKET = {"id": "c" * 32, "title": "Show", "price": "12.50", "userId": "a" * 32, "version": 0, "orderId": None}


def test_create_needs_sign_in(client, rpc):
    response = client.post("/api/tickets", json={"title": "x", "price": 1})
    assert response.status_code == 401 and errors_of(response)[0]["message"] == "Not authorized"
    assert rpc.calls == []


def test_create_returns_201_with_price_as_a_json_number(client, rpc, signed_in):
    user = signed_in()
    rpc.tickets.create_user_ticket = lambda user_id, title, price, key: {**TICKET, "title": title, "price": price}
    response = client.post("/api/tickets", data='{"title": " Show ", "price": 12.5}',
                           content_type="application/json")
    assert response.status_code == 201
    assert b'"price":12.5' in response.data
    (name, (user_id, title, price, key)), = rpc.calls
    assert (name, user_id, title, price) == ("tickets.create_user_ticket", user["id"], "Show", "12.50") and key


def test_list_pages_with_a_link_header(client, rpc):
    rpc.tickets.list_tickets = lambda limit, cursor: {"tickets": [TICKET], "next": "abc"}
    response = client.get("/api/tickets?limit=1")
    assert response.get_json() == [{**TICKET, "price": 12.5}]
    assert response.headers["Link"] == '<http://localhost/api/tickets?cursor=abc&limit=1>; rel="next"'
    for bad in ("0", "101", "x", "-1"):
        assert errors_of(client.get(f"/api/tickets?limit={bad}"))[0]["field"] == "limit"


def test_show_any_ticket_and_404s(client, rpc):
    rpc.tickets.get_ticket = lambda ticket_id: {**TICKET, "orderId": "d" * 32}
    assert client.get(f"/api/tickets/{TICKET['id']}").get_json()["orderId"] == "d" * 32
    response = client.get("/api/tickets/not-an-id")
    assert response.status_code == 404 and errors_of(response)[0]["message"] == "Ticket not found"

    def missing(ticket_id):
        raise NotFound("Ticket not found")

    rpc.tickets.get_ticket = missing
    assert client.get(f"/api/tickets/{'e' * 32}").status_code == 404


def test_update_maps_service_errors(client, rpc, signed_in):
    signed_in()
    for error, status in ((Forbidden("You do not own this ticket"), 403),
                          (Conflict("Cannot edit a reserved ticket"), 409), (NotFound("Ticket not found"), 404)):
        def fail(*args, error=error):
            raise error

        rpc.tickets.update_user_ticket = fail
        response = client.put(f"/api/tickets/{TICKET['id']}", json={"title": "x", "price": 2})
        assert response.status_code == status and errors_of(response) == [{"message": error.message}]
    assert client.put("/api/tickets/bad-id", json={"title": "x", "price": 2}).status_code == 404
