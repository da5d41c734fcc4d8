"""End to end through ``ticketing up`` on PostgreSQL and RabbitMQ, over HTTP as a browser or curl would."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.orders_support import signup_as as signup

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


def assert_error(response, status, field=None, message=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"]
    error = body["errors"][0]
    assert error.get("field") == field
    if message:
        assert error["message"] == message


def test_the_seller_journey(app):
    seller = requests.Session()
    response = seller.post(f"{app.url}/api/users/signup", json={"email": "Seller@Example.com", "password": "secret-pass"})
    assert response.status_code == 201 and response.json()["email"] == "seller@example.com"
    me = seller.get(f"{app.url}/api/users/currentuser").json()["currentUser"]
    assert me["email"] == "seller@example.com"

    created = seller.post(f"{app.url}/api/tickets", json={"title": "Concert", "price": 20.5})
    assert created.status_code == 201
    ticket = created.json()
    assert ticket["price"] == 20.5 and ticket["userId"] == me["id"] and ticket["orderId"] is None

    listed = requests.get(f"{app.url}/api/tickets").json()
    assert ticket["id"] in [t["id"] for t in listed]

    updated = seller.put(f"{app.url}/api/tickets/{ticket['id']}", json={"title": "Concert (front row)", "price": 30})
    assert updated.status_code == 200 and updated.json()["version"] == 1 and updated.json()["price"] == 30

    other = signup(app, "other@example.com")
    assert_error(other.put(f"{app.url}/api/tickets/{ticket['id']}", json={"title": "Mine", "price": 1}), 403)

    assert seller.post(f"{app.url}/api/users/signout", json={}).json() == {}
    assert seller.get(f"{app.url}/api/users/currentuser").json() == {"currentUser": None}
    assert_error(seller.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1}), 401)


def test_signin_refresh_and_reuse(app):
    signup(app, "rita@example.com")
    browser = requests.Session()
    assert_error(browser.post(f"{app.url}/api/users/signin", json={"email": "rita@example.com", "password": "nope"}),
                 400, message="Invalid credentials")
    assert browser.post(f"{app.url}/api/users/signin",
                        json={"email": "RITA@example.com", "password": "secret-pass"}).status_code == 200
    old_refresh = browser.cookies.get("ticketing_refresh")
    assert browser.post(f"{app.url}/api/users/refresh", json={}).status_code == 200
    assert browser.cookies.get("ticketing_refresh") != old_refresh
    time.sleep(float(app.env["REFRESH_GRACE_SECONDS"]) + 0.2)  # past the grace window for concurrent tabs
    thief = requests.Session()
    thief.cookies.set("ticketing_refresh", old_refresh)
    assert_error(thief.post(f"{app.url}/api/users/refresh", json={}), 401)
    assert_error(browser.post(f"{app.url}/api/users/refresh", json={}), 401)  # the whole family is revoked


def test_repeated_failed_signins_get_429(app):
    signup(app, "target@example.com")
    codes = [requests.post(f"{app.url}/api/users/signin",
                           json={"email": "target@example.com", "password": "wrong"}).status_code for _ in range(6)]
    assert codes[:5] == [400] * 5 and codes[5] == 429


def test_email_in_use(app):
    signup(app, "twice@example.com")
    assert_error(requests.post(f"{app.url}/api/users/signup", json={"email": "TWICE@example.com", "password": "abcdefgh"}),
                 400, field="email", message="Email in use")


@pytest.mark.parametrize("data,status,field", [
    ("{bad json", 400, None), ("[1]", 400, None), ('{"email": "x"}', 400, "email"),
    ('{"email": "a@b.co"}', 400, "password"), ('{"email": "a@b.co", "password": 1234}', 400, "password"),
    ('{"email": "a@b.co", "password": "abc"}', 400, "password"),
])
def test_bad_signup_input(app, data, status, field):
    response = requests.post(f"{app.url}/api/users/signup", data=data, headers={"Content-Type": "application/json"})
    assert_error(response, status, field)


def test_bad_ticket_input_and_unknowns(app):
    user = signup(app, "bad-input@example.com")
    url = f"{app.url}/api/tickets"
    assert_error(user.post(url, json={"title": "", "price": 1}), 400, "title")
    assert_error(user.post(url, json={"title": "x", "price": -1}), 400, "price")
    assert_error(user.post(url, json={"title": "x", "price": "10"}), 400, "price")
    assert_error(user.post(url, data='{"title": "x", "price": 1.234}', headers={"Content-Type": "application/json"}),
                 400, "price")
    assert_error(user.post(url, data="x" * (1024 * 1024 + 10), headers={"Content-Type": "application/json"}), 413)
    assert_error(requests.get(f"{url}/not-an-id"), 404)
    assert_error(requests.get(f"{url}/{'f' * 32}"), 404)
    assert_error(requests.get(f"{app.url}/api/no-such-route"), 404)
    assert_error(requests.get(f"{url}?limit=0"), 400, "limit")


def test_paging_with_link_header(app):
    user = signup(app, "pager@example.com")
    made = [user.post(f"{app.url}/api/tickets", json={"title": f"P{n}", "price": 1}).json()["id"] for n in range(3)]
    response = requests.get(f"{app.url}/api/tickets?limit=2")
    assert [t["id"] for t in response.json()] == made[::-1][:2]
    next_url = response.links["next"]["url"]
    assert requests.get(next_url).json()[0]["id"] == made[0]


def test_concurrent_requests_are_served_in_parallel(app):
    """Threads in the gateway and green threads in the services: 40 requests at once all succeed."""
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _: requests.get(f"{app.url}/api/tickets", timeout=10).status_code, range(40)))
    assert codes == [200] * 40


def test_health_and_openapi(app):
    assert requests.get(f"{app.url}/api/healthz").json() == {"status": "ok"}
    assert requests.get(f"{app.url}/api/readyz").status_code == 200
    paths = requests.get(f"{app.url}/api/openapi.json").json()["paths"]
    assert {"/api/users/signup", "/api/tickets", "/api/tickets/{id}"} <= set(paths)
