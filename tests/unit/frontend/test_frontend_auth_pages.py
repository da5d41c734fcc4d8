"""Sign up, sign in, sign out, the header, CSRF and the auth cookies' round trip."""
from gateway.auth import ACCESS_COOKIE, REFRESH_COOKIE
from tests.unit.frontend.frontend_pages_helpers import Visitor, field_block, text


def test_signed_out_header_offers_sign_in_and_sign_up(visitor):
    html = text(visitor.get("/auth/signup"))
    assert 'href="/auth/signin"' in html and 'href="/auth/signup"' in html
    assert "Sign out" not in html and "My orders" not in html


def test_signup_form_has_real_labels(visitor):
    html = text(visitor.get("/auth/signup"))
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'id="email" name="email" type="email"' in html
    assert 'id="password" name="password" type="password"' in html


def test_signup_signs_in_and_redirects_home_with_the_gateway_cookies(visitor, fake):
    response = visitor.submit("/auth/signup", "/auth/signup", {"email": "Ann@Example.com", "password": "secret-pass"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    set_cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith(f"{ACCESS_COOKIE}=") and "HttpOnly" in c for c in set_cookies)
    assert any(c.startswith(f"{REFRESH_COOKIE}=") for c in set_cookies)

    html = text(visitor.get("/"))
    assert "ann@example.com" in html
    assert 'href="/tickets/new"' in html and "Sell a ticket" in html
    assert 'href="/orders"' in html and "My orders" in html
    assert "Sign out" in html
    assert "Welcome!" in html  # flashed once after the redirect


def test_signup_errors_are_shown_next_to_their_fields_and_typed_email_is_kept(visitor, fake):
    response = visitor.submit("/auth/signup", "/auth/signup", {"email": "not-an-email", "password": "x"})
    assert response.status_code == 400
    html = text(response)
    email = field_block(html, "email")
    assert "Email must be valid" in email and 'value="not-an-email"' in email
    assert 'aria-invalid="true"' in email and 'aria-describedby="email-error"' in email
    password = field_block(html, "password")
    assert "Password must be between 8 and 64 characters" in password
    assert 'value="x"' not in password  # a password is never written back into the page
    assert fake.users == {}


def test_signup_with_an_email_in_use_says_so_at_the_email(visitor, fake):
    fake.add_user("ann@example.com")
    response = visitor.submit("/auth/signup", "/auth/signup", {"email": "ann@example.com", "password": "secret-pass"})
    assert response.status_code == 400
    assert "Email in use" in field_block(text(response), "email")


def test_signin_with_wrong_credentials_shows_the_error_and_keeps_the_email(visitor, fake):
    fake.add_user("ann@example.com", "secret-pass")
    response = visitor.submit("/auth/signin", "/auth/signin", {"email": "ann@example.com", "password": "wrong"})
    assert response.status_code == 400
    html = text(response)
    assert "Invalid credentials" in html
    assert 'value="ann@example.com"' in field_block(html, "email")
    assert visitor.cookie(ACCESS_COOKIE) is None


def test_signin_goes_back_to_the_page_that_asked_for_it(visitor, fake):
    fake.add_user("ann@example.com", "secret-pass")
    to_signin = visitor.get("/tickets/new")
    assert to_signin.status_code == 302
    assert to_signin.headers["Location"] == "/auth/signin?next=%2Ftickets%2Fnew"
    html = text(visitor.get(to_signin.headers["Location"]))
    assert 'name="next" value="/tickets/new"' in html
    response = visitor.submit(
        "/auth/signin?next=/tickets/new",
        "/auth/signin",
        {"email": "ann@example.com", "password": "secret-pass", "next": "/tickets/new"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/tickets/new"


def test_signin_never_redirects_to_another_site(visitor, fake):
    fake.add_user("ann@example.com", "secret-pass")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        visitor.client.delete_cookie(ACCESS_COOKIE)
        visitor.client.delete_cookie(REFRESH_COOKIE)
        response = visitor.submit(
            "/auth/signin", "/auth/signin", {"email": "ann@example.com", "password": "secret-pass", "next": target}
        )
        assert response.headers["Location"] == "/", target


def test_signed_in_visitor_is_sent_home_from_the_auth_forms(visitor):
    visitor.signup()
    assert visitor.get("/auth/signin").headers["Location"] == "/"
    assert visitor.get("/auth/signup").headers["Location"] == "/"


def test_signout_asks_by_form_then_clears_the_cookies(visitor, fake):
    visitor.signup()
    page = text(visitor.get("/auth/signout"))
    assert '<form method="post" action="/auth/signout"' in page and "buyer@example.com" in page
    response = visitor.submit("/auth/signout", "/auth/signout", {})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert visitor.cookie(ACCESS_COOKIE) is None and visitor.cookie(REFRESH_COOKIE) is None
    assert fake.refresh == {}
    html = text(visitor.get("/"))
    assert "Sign out" not in html and "You are signed out" in html


def test_signout_page_when_signed_out(visitor):
    html = text(visitor.get("/auth/signout"))
    assert "You are signed out" in html


def test_forms_without_a_csrf_token_are_refused(visitor, fake):
    visitor.signup()
    ticket = fake.add_ticket(fake.add_user("seller@example.com"))
    for path, data in [
        ("/auth/signup", {"email": "x@example.com", "password": "secret-pass"}),
        ("/auth/signin", {"email": "x@example.com", "password": "secret-pass"}),
        ("/auth/signout", {}),
        ("/tickets/new", {"title": "A", "price": "1"}),
        (f"/tickets/{ticket['id']}/purchase", {}),
        (f"/tickets/{ticket['id']}/edit", {"title": "A", "price": "1"}),
        ("/orders/abc/pay", {"token": "tok_visa"}),
        ("/orders/abc/cancel", {}),
    ]:
        response = visitor.client.post(path, data=data)
        assert response.status_code == 400, path
        assert "This form has expired" in text(response), path
    wrong = visitor.client.post("/tickets/new", data={"csrf_token": "forged", "title": "A", "price": "1"})
    assert wrong.status_code == 400
    assert len(fake.tickets) == 1 and fake.orders == {}


def test_an_expired_access_token_is_refreshed_once_and_the_new_cookies_reach_the_browser(visitor, fake):
    visitor.signup()
    old_access = visitor.cookie(ACCESS_COOKIE)
    fake.expire_access_tokens()
    fake.calls.clear()
    response = visitor.get("/")
    assert "buyer@example.com" in text(response)
    assert fake.paths_called().count("POST /api/users/refresh") == 1
    assert any(c.startswith(f"{ACCESS_COOKIE}=") for c in response.headers.getlist("Set-Cookie"))
    assert visitor.cookie(ACCESS_COOKIE) not in (None, old_access)


def test_an_expired_access_token_is_refreshed_for_a_page_that_needs_it(visitor, fake):
    visitor.signup()
    fake.expire_access_tokens()
    fake.calls.clear()
    response = visitor.get("/orders")
    assert response.status_code == 200
    assert fake.paths_called().count("POST /api/users/refresh") == 1


def test_a_refused_refresh_leaves_the_visitor_signed_out(visitor, fake):
    visitor.signup()
    fake.expire_access_tokens()
    fake.refresh.clear()  # e.g. the user was revoked
    html = text(visitor.get("/"))
    assert "Sign in" in html and "buyer@example.com" not in html
    assert visitor.cookie(REFRESH_COOKIE) is None
    to_signin = visitor.get("/orders")
    assert to_signin.status_code == 302 and to_signin.headers["Location"].startswith("/auth/signin")


def test_two_visitors_never_share_auth(app, fake):
    ann, bob = Visitor(app.test_client()), Visitor(app.test_client())
    ann.signup("ann@example.com")
    bob.signup("bob@example.com")
    assert "ann@example.com" in text(ann.get("/")) and "bob@example.com" not in text(ann.get("/"))
    assert "bob@example.com" in text(bob.get("/")) and "ann@example.com" not in text(bob.get("/"))
    assert len(app.extensions["gateway_http"].cookies) == 0


def test_the_frontend_keeps_its_own_session_cookie_to_itself(visitor, fake):
    visitor.signup()
    visitor.get("/auth/signout")  # a page with a form: the frontend session cookie exists now
    assert visitor.cookie("frontend_session")
    fake.calls.clear()
    visitor.get("/")
    assert fake.calls and all("frontend_session" not in cookies for _, _, cookies in fake.calls)
    assert all(f"{ACCESS_COOKIE}=" in cookies for _, _, cookies in fake.calls)


def test_the_csrf_test_covers_every_form_the_frontend_accepts(make_app):
    """If a new POST route appears, the test above must list it (and so prove it refuses forgeries)."""
    import inspect

    source = inspect.getsource(test_forms_without_a_csrf_token_are_refused)
    app = make_app()
    posted = sorted(rule.rule for rule in app.url_map.iter_rules() if "POST" in rule.methods)
    assert posted, "no forms?"
    for rule in posted:
        shape = rule.replace("<ticket_id>", "{ticket['id']}").replace("<order_id>", "abc")
        assert f'"{shape}"' in source, f"{rule} is not in the CSRF test"
