"""State-changing API calls must be JSON and, from a browser, same-origin (cross-site forgery)."""
import pytest

from tests.unit.gateway.conftest import errors_of

ORDER = "d" * 32
SESSION = {"user": {"id": "a" * 32, "email": "ann@example.com"}, "accessToken": "access", "refreshToken": "refresh"}

#: every state-changing route of the API, with a body it accepts
ROUTES = [
    ("POST", "/api/users/signup", {"email": "ann@example.com", "password": "long-enough"}),
    ("POST", "/api/users/signin", {"email": "ann@example.com", "password": "long-enough"}),
    ("POST", "/api/users/signout", {}),
    ("POST", "/api/users/refresh", {}),
    ("POST", "/api/tickets", {"title": "Show", "price": 1}),
    ("PUT", f"/api/tickets/{'c' * 32}", {"title": "Show", "price": 1}),
    ("POST", "/api/orders", {"ticketId": "c" * 32}),
    ("DELETE", f"/api/orders/{ORDER}", None),
    ("POST", "/api/payments", {"token": "tok_visa", "orderId": ORDER}),
]
IDS = [f"{m} {p}" for m, p, _ in ROUTES]


@pytest.fixture
def everything_works(rpc):
    ticket = {"id": "c" * 32, "title": "Show", "price": "1.00", "userId": "a" * 32, "version": 0, "orderId": None}
    order = {"id": ORDER, "status": "cancelled", "userId": "a" * 32, "expiresAt": "2030-01-01T00:00:00Z",
             "version": 1, "ticket": {"id": "c" * 32, "title": "Show", "price": "1.00"}}
    rpc.auth.signup = lambda *a: SESSION
    rpc.auth.signin = lambda *a: SESSION
    rpc.auth.signout = lambda *a: {}
    rpc.auth.refresh = lambda *a: SESSION
    rpc.tickets.create_user_ticket = lambda *a: ticket
    rpc.tickets.update_user_ticket = lambda *a: ticket
    rpc.orders.create_order = lambda *a: order
    rpc.orders.create_user_order = lambda *a: order
    rpc.orders.cancel_user_order = lambda *a: order
    rpc.payments.charge = lambda *a: {"id": "p" * 32}
    return rpc


@pytest.fixture
def browser(client, signed_in, everything_works):
    signed_in()
    client.set_cookie("ticketing_refresh", "refresh")
    return client


@pytest.mark.parametrize("method,path,body", ROUTES, ids=IDS)
def test_same_origin_json_calls_work(browser, method, path, body):
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    response = browser.open(path, method=method, json=body, headers=headers)
    assert response.status_code < 400, response.get_data(as_text=True)


@pytest.mark.parametrize("method,path,body", ROUTES, ids=IDS)
def test_calls_without_browser_headers_work_like_the_frontends(browser, method, path, body):
    assert browser.open(path, method=method, json=body).status_code < 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
@pytest.mark.parametrize("method,path,body", [r for r in ROUTES if r[0] != "DELETE"],
                         ids=[i for i in IDS if not i.startswith("DELETE")])
def test_a_body_that_is_not_json_is_a_415(browser, everything_works, method, path, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = browser.open(path, method=method, data='{"email": "x"}' if content_type else None, headers=headers)
    assert response.status_code == 415
    assert errors_of(response) == [{"message": "Request body must be application/json"}]
    assert everything_works.calls == []


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "http://localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
], ids=["other-origin", "null-origin", "lookalike", "sec-fetch-cross-site", "sec-fetch-same-site", "both"])
@pytest.mark.parametrize("method,path,body", ROUTES, ids=IDS)
def test_cross_site_calls_are_a_403_before_any_rpc(browser, everything_works, method, path, body, headers):
    response = browser.open(path, method=method, json=body, headers=headers)
    assert response.status_code == 403
    assert errors_of(response) == [{"message": "Cross-site requests are not allowed"}]
    assert everything_works.calls == []


def test_the_public_url_is_an_allowed_origin(app, browser):
    app.config["PUBLIC_URL"] = "https://tickets.example.com"
    response = browser.post("/api/users/signout", json={}, headers={"Origin": "https://tickets.example.com"})
    assert response.status_code == 200


def test_reads_are_not_affected(client, everything_works):
    everything_works.tickets.list_tickets = lambda limit, cursor: {"tickets": [], "next": None}
    assert client.get("/api/tickets", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200
