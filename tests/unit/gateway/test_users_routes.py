from services.common.errors import BadRequest, NotAuthorized, TooManyRequests

from .conftest import errors_of

SESSION = {"user": {"id": "a" * 32, "email": "ann@example.com"}, "accessToken": "access.jwt.value",
           "refreshToken": "refresh-secret"}


def cookies(response):
    return {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}


def test_signup_sets_httponly_lax_cookies_and_returns_201(client, rpc):
    rpc.auth.signup = lambda email, password, client: SESSION
    response = client.post("/api/users/signup", json={"email": "Ann@Example.com", "password": " pass-word "})
    assert response.status_code == 201 and response.get_json() == SESSION["user"]
    assert rpc.calls == [("auth.signup", ("ann@example.com", "pass-word", "127.0.0.1"))]
    jar = cookies(response)
    for name in ("ticketing_access", "ticketing_refresh"):
        assert "HttpOnly" in jar[name] and "SameSite=Lax" in jar[name] and "Secure" not in jar[name]


def test_cookies_are_secure_in_production(rpc, monkeypatch):
    from gateway.app import create_app

    monkeypatch.setenv("TICKETING_ENV", "production")
    rpc.auth.signup = lambda email, password, client: SESSION
    app = create_app({"RPC_POOL": rpc, "REVOCATION_POLL_SECONDS": 0})
    response = app.test_client().post("/api/users/signup", json={"email": "a@b.co", "password": "pass-word"})
    assert all("Secure" in c for c in cookies(response).values())


def test_signup_input_errors_name_the_field(client, rpc):
    rpc.auth.signup = lambda email, password, client: SESSION
    response = client.post("/api/users/signup", json={"email": "nope", "password": "pass-word"})
    assert response.status_code == 400 and errors_of(response)[0]["field"] == "email"
    response = client.post("/api/users/signup", json={"email": "a@b.co", "password": "abc"})
    assert errors_of(response)[0]["field"] == "password"
    assert rpc.calls == []


def test_email_in_use_passes_through_as_400(client, rpc):
    def in_use(email, password, client):
        raise BadRequest("Email in use", field="email")

    rpc.auth.signup = in_use
    response = client.post("/api/users/signup", json={"email": "a@b.co", "password": "pass-word"})
    assert response.status_code == 400 and errors_of(response) == [{"message": "Email in use", "field": "email"}]


def test_signin_passes_the_client_address_and_maps_throttling(client, rpc):
    def throttled(email, password, client_address):
        raise TooManyRequests()

    rpc.auth.signin = throttled
    response = client.post("/api/users/signin", json={"email": "a@b.co", "password": "x"})
    assert response.status_code == 429
    assert rpc.calls[0][1][2] == "127.0.0.1"


def test_currentuser_never_401_and_has_the_camelcase_alias(client, signed_in):
    assert client.get("/api/users/currentuser").get_json() == {"currentUser": None}
    client.set_cookie("ticketing_access", "garbage")
    assert client.get("/api/users/currentUser").get_json() == {"currentUser": None}
    user = signed_in()
    assert client.get("/api/users/currentuser").get_json() == {"currentUser": user}


def test_bearer_header_works_for_api_clients(client, app):
    from services.common import tokens

    token = tokens.issue_access_token("b" * 32, "bob@example.com")
    response = client.get("/api/users/currentuser", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json()["currentUser"]["email"] == "bob@example.com"


def test_signout_revokes_and_clears_cookies(client, rpc):
    rpc.auth.signout = lambda token: {}
    client.set_cookie("ticketing_refresh", "refresh-secret")
    response = client.post("/api/users/signout", json={})
    assert response.status_code == 200 and response.get_json() == {}
    assert rpc.calls == [("auth.signout", ("refresh-secret",))]
    assert all("Max-Age=0" in c or "Expires=Thu, 01 Jan 1970" in c for c in cookies(response).values())


def test_refresh_rotates_cookies_or_clears_them(client, rpc):
    assert client.post("/api/users/refresh", json={}).status_code == 401
    rpc.auth.refresh = lambda token: SESSION
    client.set_cookie("ticketing_refresh", "old")
    response = client.post("/api/users/refresh", json={})
    assert response.status_code == 200 and "refresh-secret" in cookies(response)["ticketing_refresh"]

    def reused(token):
        raise NotAuthorized("Refresh token reuse detected; please sign in again")

    rpc.auth.refresh = reused
    response = client.post("/api/users/refresh", json={})
    assert response.status_code == 401 and "Max-Age=0" in cookies(response)["ticketing_refresh"]
