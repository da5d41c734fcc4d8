"""A gateway that is down, slow or failing; error pages; headers; configuration."""
import logging
import socket
import threading
import time
from decimal import Decimal

import pytest
from tests.unit.frontend.frontend_pages_helpers import Visitor, text

from frontend.api import _parse_set_cookie, encode_json
from frontend.app import create_app
from frontend.money import format_money, parse_price
from services.common.net import free_port  # nothing listens there


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a hung gateway."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def assert_friendly_503(response):
    assert response.status_code == 503
    html = text(response)
    assert "The marketplace is not answering right now" in html
    assert 'class="site-header"' in html and "app.css" in html
    assert "Traceback" not in html and "requests." not in html


@pytest.mark.parametrize("path", ["/", "/tickets/abc", "/auth/signin", "/orders"])
def test_gateway_down_gives_a_friendly_page_at_once(path):
    app = create_app({"GATEWAY_URL": f"http://127.0.0.1:{free_port()}", "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})
    client = app.test_client()
    client.set_cookie("ticketing_access", "abc")  # a signed-in browser: the page must ask the gateway
    started = time.monotonic()
    response = client.get(path)
    assert time.monotonic() - started < 3
    assert_friendly_503(response)
    assert "Try again" in text(response)


def test_gateway_down_while_posting_a_form_gives_the_friendly_page(visitor, fake, make_app):
    token = visitor.csrf_token("/auth/signup")
    fake.fail_with = 503
    response = visitor.client.post("/auth/signup", data={"csrf_token": token, "email": "a@b.co", "password": "secret-pass"})
    assert_friendly_503(response)


def test_a_hung_gateway_gives_the_friendly_page_within_the_timeout(silent_server):
    app = create_app({"GATEWAY_URL": silent_server, "SECRET_KEY": "frontend-unit-secret-0123456789abcdef", "GATEWAY_TIMEOUT": 0.5})
    started = time.monotonic()
    response = app.test_client().get("/")
    assert time.monotonic() - started < 2
    assert_friendly_503(response)


def test_the_page_budget_bounds_a_page_of_several_slow_calls(make_app, fake):
    visitor = Visitor(make_app(GATEWAY_TIMEOUT=0.4, GATEWAY_PAGE_BUDGET=0.6).test_client())
    visitor.signup()
    fake.delay = 0.3  # each call under the timeout, together over the budget
    started = time.monotonic()
    response = visitor.get("/orders")
    elapsed = time.monotonic() - started
    fake.delay = 0
    assert elapsed < 1.5
    assert_friendly_503(response)


def test_a_failing_gateway_gives_the_friendly_page(visitor, fake):
    fake.fail_with = 500
    assert_friendly_503(visitor.get("/"))


def test_a_payment_that_times_out_links_back_to_the_order(make_app, fake):
    visitor = Visitor(make_app(PAYMENT_TIMEOUT=0.3).test_client())
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "10")
    visitor.signup()
    order_path = visitor.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {}).headers["Location"]
    token = visitor.csrf_token(order_path)
    fake.delay = 0.6
    response = visitor.client.post(f"{order_path}/pay", data={"csrf_token": token, "token": "tok_visa"})
    fake.delay = 0
    assert response.status_code == 503
    html = text(response)
    assert "We could not confirm your payment yet" in html and "never charged twice" in html
    assert f'href="{order_path}"' in html


def test_healthz_answers_without_the_gateway():
    app = create_app({"GATEWAY_URL": f"http://127.0.0.1:{free_port()}", "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok"


def test_unknown_page_is_a_404_in_the_site_look(visitor):
    response = visitor.get("/no/such/page")
    assert response.status_code == 404
    html = text(response)
    assert "Page not found" in html and 'class="site-header"' in html and "Sign in" in html


def test_an_unexpected_error_is_a_500_page_in_the_site_look(fake, caplog):
    app = create_app({"GATEWAY_URL": fake.url, "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom")
    assert response.status_code == 500
    html = text(response)
    assert "Something went wrong on our side" in html and 'class="site-header"' in html
    assert "kaboom" not in html and "Traceback" not in html
    assert "kaboom" in caplog.text  # but the operator sees it


def test_static_stylesheet_is_served_from_our_own_origin(visitor):
    response = visitor.get("/static/css/app.css")
    assert response.status_code == 200 and b".ticket-card" in response.data
    html = text(visitor.get("/"))
    assert "http://" not in html.split("<body>")[0] and "https://" not in html.split("<body>")[0]


def test_pages_carry_security_headers_and_are_not_cached(visitor):
    response = visitor.get("/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "js.stripe.com" not in csp


def test_the_countdown_script_is_allowed_by_its_nonce(visitor, fake):
    ticket = fake.add_ticket(fake.add_user("seller@example.com"), "Jazz", "10")
    visitor.signup()
    order_path = visitor.submit(f"/tickets/{ticket['id']}", f"/tickets/{ticket['id']}/purchase", {}).headers["Location"]
    response = visitor.get(order_path)
    nonce = text(response).split('<script nonce="')[1].split('"')[0]
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("environment", ["production", "development"])
@pytest.mark.parametrize("secret", [None, "change-me-secret-key", "too-short"])
def test_a_missing_placeholder_or_short_secret_key_is_refused_everywhere(monkeypatch, environment, secret):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"TICKETING_ENV": environment, "SECRET_KEY": secret})


def test_production_cookies_are_secure(monkeypatch):
    app = create_app({"TICKETING_ENV": "production", "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    app = create_app({"TICKETING_ENV": "development", "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_configuration_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATEWAY_URL", "http://gateway.internal:9000/")
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_abc")
    monkeypatch.setenv("SECRET_KEY", "from-env-0123456789abcdef0123456789")
    app = create_app()
    assert app.config["GATEWAY_URL"] == "http://gateway.internal:9000"
    assert app.config["STRIPE_PUBLISHABLE_KEY"] == "pk_test_abc"
    assert app.config["SECRET_KEY"] == "from-env-0123456789abcdef0123456789"
    monkeypatch.delenv("GATEWAY_URL")
    monkeypatch.setenv("PORT", "8123")
    assert create_app().config["GATEWAY_URL"] == "http://127.0.0.1:8123"


def test_money_is_parsed_and_shown_without_floats():
    assert parse_price("12.5") == Decimal("12.5")
    assert parse_price(" $1,234.56 ") == Decimal("1234.56")
    assert parse_price("abc") is None and parse_price("") is None and parse_price("NaN") is None
    assert format_money(Decimal("12.5")) == "$12.50"
    assert format_money(1000000) == "$1,000,000.00"
    assert encode_json({"title": 'Say "hi"', "price": Decimal("0.10")}) == b'{"title": "Say \\"hi\\"", "price": 0.10}'


def test_set_cookie_headers_are_read_as_set_or_deleted():
    assert _parse_set_cookie("a=1; Path=/; HttpOnly") == ("a", "1", False)
    assert _parse_set_cookie("a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/")[2] is True
    assert _parse_set_cookie("a=x; Max-Age=0")[2] is True
    assert _parse_set_cookie("a=x; Expires=Thu, 01 Jan 2099 00:00:00 GMT")[2] is False
