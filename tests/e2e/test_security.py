"""Security rules through ``ticketing up`` on PostgreSQL and RabbitMQ, over HTTP as a browser or attacker would."""
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.waiting import wait_for
from tests.e2e.orders_support import signup_as as signup

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(app_factory):
    return app_factory()


def errors(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"] and body["errors"]
    return body["errors"]


def operator(app):
    from nameko.standalone.rpc import ClusterRpcProxy

    return ClusterRpcProxy({"AMQP_URI": app.env["AMQP_URI"], "serializer": "json"})


def test_ticketing_up_made_its_own_keys_for_the_run(app):
    assert "generated fresh ones for this run" in app.log()
    keys = Path(app.env["VAR_DIR"]) / "keys"
    assert (keys / "jwt-private.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("title", ["Show\x00", "Show\r\nBcc: x@evil.test", "\u202eevil"])
def test_control_characters_in_a_title_are_a_400_on_postgresql(app, title):
    seller = signup(app, f"nul-{abs(hash(title))}@example.com")
    assert errors(seller.post(f"{app.url}/api/tickets", json={"title": title, "price": 1}), 400)[0]["field"] == "title"


def test_bad_inputs_are_4xx_never_500(app):
    seller = signup(app, "inputs@example.com")
    deep = '{"title": ' + "[" * 50_000 + "]" * 50_000 + ', "price": 1}'
    assert errors(seller.post(f"{app.url}/api/tickets", data=deep, headers={"Content-Type": "application/json"}),
                  400)
    assert errors(requests.get(f"{app.url}/api/tickets", params={"limit": "²"}), 400)[0]["field"] == "limit"
    assert errors(requests.get(f"{app.url}/api/tickets", params={"cursor": "W1siMjAyNiIsICJhXHUwMDAwYiJdXQ"}), 400)
    long_email = "a" * 300 + "@example.com"
    assert errors(requests.post(f"{app.url}/api/users/signin", json={"email": long_email, "password": "x" * 8}),
                  400)[0]["field"] == "email"


def test_the_same_idempotency_key_from_two_users_makes_two_tickets(app):
    headers = {"Idempotency-Key": "shared-key"}
    ann, bob = signup(app, "idem-ann@example.com"), signup(app, "idem-bob@example.com")
    first = ann.post(f"{app.url}/api/tickets", json={"title": "A", "price": 1}, headers=headers)
    again = ann.post(f"{app.url}/api/tickets", json={"title": "A", "price": 1}, headers=headers)
    other = bob.post(f"{app.url}/api/tickets", json={"title": "B", "price": 1}, headers=headers)
    assert first.status_code == again.status_code == other.status_code == 201, other.text
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]


def test_cross_site_and_non_json_state_changes_are_refused(app):
    victim = signup(app, "csrf@example.com")
    form = victim.post(f"{app.url}/api/tickets", data='{"title": "x", "price": 1}',
                       headers={"Content-Type": "text/plain"})
    assert errors(form, 415)
    cross = victim.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1},
                        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert errors(cross, 403)
    login_csrf = requests.post(f"{app.url}/api/users/signin", data="email=a@b.co&password=whatever",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert errors(login_csrf, 415)
    same = victim.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1},
                       headers={"Origin": app.url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201


def test_a_client_calling_the_api_directly_cannot_choose_its_throttling_address(app_factory):
    strict = app_factory(AUTH_MAX_FAILURES_PER_CLIENT="5", AUTH_MAX_SIGNUPS_PER_CLIENT="3")
    codes = [requests.post(f"{strict.url}/api/users/signin",
                           json={"email": f"xff-{n}@example.com", "password": "x" * 8},
                           headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(7)]
    assert codes == [400] * 5 + [429] * 2  # one address (ours), however many we claim to be
    signups = [requests.post(f"{strict.url}/api/users/signup", json={"email": f"new-{n}@example.com",
                                                                       "password": "x" * 8},
                             headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(4)]
    assert signups == [201] * 3 + [429]


def test_two_tabs_refreshing_together_both_stay_signed_in(app):
    browser = signup(app, "tabs@example.com")
    refresh = browser.cookies.get("ticketing_refresh")

    def tab(_):
        return requests.post(f"{app.url}/api/users/refresh", json={}, cookies={"ticketing_refresh": refresh})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(tab, range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.cookies.get("ticketing_refresh") for a in answers}) == 1


def test_sign_out_stops_the_access_token_within_seconds(app):
    browser = signup(app, "signout@example.com")
    stolen = browser.cookies.get("ticketing_access")
    assert browser.post(f"{app.url}/api/users/signout", json={}).status_code == 200
    started = time.monotonic()

    def refused_everywhere():
        # every web worker pulls revocations on its own, so one refusal proves nothing about the
        # others: reads and writes, a dozen answers in a row, all refusing
        reads = all(requests.get(f"{app.url}/api/users/currentuser",
                                 cookies={"ticketing_access": stolen}).json()["currentUser"] is None
                    for _ in range(8))
        return reads and all(requests.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1},
                                           cookies={"ticketing_access": stolen}).status_code == 401
                             for _ in range(4))

    wait_for(refused_everywhere, timeout=5, what="the stolen token refused by every worker")
    assert time.monotonic() - started < 5


def test_revoke_user_stops_access_tokens_within_seconds(app):
    browser = signup(app, "revoked@example.com")
    assert browser.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1}).status_code == 201
    with operator(app) as rpc:
        rpc.auth.revoke_user("revoked@example.com")
    wait_for(lambda: browser.post(f"{app.url}/api/tickets", json={"title": "x", "price": 1}).status_code == 401,
             timeout=5)
    assert errors(browser.post(f"{app.url}/api/users/refresh", json={}), 401)
