"""The auth service in a real container: sign-up, sign-in, refresh rotation, revoke (SQLite and PostgreSQL)."""
import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.auth.service import AuthService
from services.common import tokens
from services.common.errors import BadRequest, NotAuthorized, TooManyRequests

pytestmark = pytest.mark.integration


@pytest.fixture
def auth_settings():
    """Settings the auth service starts with (a test parametrizes this to change them)."""
    return {}


@pytest.fixture
def auth(container_factory, service_config, database_url, auth_settings):
    container = container_factory(AuthService, {**service_config("auth", database_url), **auth_settings})
    container.start()
    with ServiceRpcProxy("auth", service_config("auth", database_url)) as rpc:
        yield rpc


@pytest.mark.parametrize("auth_settings", [{"REFRESH_GRACE_SECONDS": "0"}])  # any second use is reuse
def test_signup_signin_refresh_and_reuse(auth):
    signed_up = auth.signup("Ann@Example.com", "secret-pass")
    assert signed_up["user"]["email"] == "ann@example.com"
    with pytest.raises(BadRequest, match="Email in use"):
        auth.signup("ann@example.com", "secret-pass")
    signed_in = auth.signin("ann@example.com", "secret-pass", "10.0.0.1")
    assert tokens.verify_access_token(signed_in["accessToken"])["id"] == signed_up["user"]["id"]
    rotated = auth.refresh(signed_in["refreshToken"])
    with pytest.raises(NotAuthorized, match="reuse"):
        auth.refresh(signed_in["refreshToken"])
    with pytest.raises(NotAuthorized):  # the family is gone, the newest token too
        auth.refresh(rotated["refreshToken"])
    assert auth.get_user(signed_up["user"]["id"]) == signed_up["user"]


def test_failures_are_recorded_even_though_signin_fails(auth):
    auth.signup("bob@example.com", "secret-pass")
    for _ in range(5):
        with pytest.raises(BadRequest, match="Invalid credentials"):
            auth.signin("bob@example.com", "wrong", "10.0.0.2")
    with pytest.raises(TooManyRequests, match="try again in"):
        auth.signin("bob@example.com", "secret-pass", "10.0.0.3")


def test_revoke_user_stops_refresh_at_once(auth):
    session = auth.signup("eve@example.com", "secret-pass")
    assert auth.revoke_user("EVE@example.com")["revokedTokens"] == 1
    with pytest.raises(NotAuthorized):
        auth.refresh(session["refreshToken"])


def test_simultaneous_first_failures_are_all_counted_never_a_500(auth, service_config, database_url):
    """The throttle counter is one atomic upsert: parallel first attempts on one email all count, so
    exactly the free ones get an answer and the rest wait (a lost update would let more through)."""
    import eventlet
    from eventlet.event import Event

    from services.auth.domain import FREE_ATTEMPTS_PER_EMAIL

    go = Event()

    def try_once(n):
        with ServiceRpcProxy("auth", service_config("auth", database_url)) as rpc:
            go.wait()  # every proxy connected first: the attempts start together
            try:
                rpc.signin("racer@example.com", "wrong-password", f"10.1.0.{n}")
            except (BadRequest, TooManyRequests) as exc:
                return type(exc).__name__
        return "signed in?"

    pool = eventlet.GreenPool(8)
    running = [pool.spawn(try_once, n) for n in range(8)]
    eventlet.sleep(0.5)
    go.send()
    answers = [thread.wait() for thread in running]
    assert sorted(answers) == ["BadRequest"] * FREE_ATTEMPTS_PER_EMAIL + ["TooManyRequests"] * (
        8 - FREE_ATTEMPTS_PER_EMAIL), answers


def test_an_attempt_counts_before_its_password_is_hashed(auth, monkeypatch):
    """Counted and committed before the slow, memory-hard check: attempts whose hash never finishes
    (the worker died, the hash failed) still use up the free ones."""
    from nameko.exceptions import RemoteError

    from services.auth import passwords

    def dies_while_hashing(*_args):
        raise RuntimeError("the worker died while hashing")

    monkeypatch.setattr(passwords, "verify_password", dies_while_hashing)
    for n in range(5):
        with pytest.raises(RemoteError, match="RuntimeError"):
            auth.signin("carol@example.com", f"guess-{n}-long", f"10.2.0.{n}")
    with pytest.raises(TooManyRequests, match="try again in"):
        auth.signin("carol@example.com", "guess-5-long", "10.2.0.5")
