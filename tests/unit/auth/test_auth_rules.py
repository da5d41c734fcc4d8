from datetime import timedelta

import pytest

from services.auth import domain, models, repository
from services.auth import service_layer as auth
from services.common import tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, TooManyRequests


@pytest.fixture
def store(make_store):
    return make_store("auth")


@pytest.fixture
def session(store):
    """A session of the test's own, to look at (and move the clock of) what the service layer committed."""
    with store.session() as session:
        yield session


def sign_up(store, email="Ann@Example.com", password="secret-pass"):
    return auth.sign_up(store, email, password)


def test_signup_stores_lower_case_email_and_a_memory_hard_hash(store, session):
    result = sign_up(store)
    user = session.get(models.User, result["user"]["id"])
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$") and "secret-pass" not in user.password_hash
    assert tokens.verify_access_token(result["accessToken"])["email"] == "ann@example.com"


def test_email_in_use_whatever_the_case(store):
    sign_up(store)
    with pytest.raises(BadRequest, match="Email in use"):
        auth.sign_up(store, "ANN@example.com", "other-pass")


def test_refresh_tokens_are_stored_hashed(store, session):
    result = sign_up(store)
    stored = session.query(models.RefreshToken).one()
    assert stored.token_hash != result["refreshToken"] and len(stored.token_hash) == 64


def test_signin_with_wrong_password_or_unknown_email_is_the_same_answer(store):
    sign_up(store)
    assert auth.sign_in(store, "ann@example.com", "wrong") is None
    assert auth.sign_in(store, "nobody@example.com", "secret-pass") is None
    email = domain.signin_email(" ANN@example.com ", " secret-pass ")
    assert auth.sign_in(store, email, " secret-pass ")["user"]["email"] == "ann@example.com"
    with pytest.raises(BadRequest, match="Invalid credentials"):
        auth.signin(store, "ann@example.com", "wrong")


def attempt(store, email="ann@example.com", client="1.2.3.4"):
    auth.count_signin_attempt(store, email, client)


def counter(store, key="email:ann@example.com"):
    with store.read() as session:
        return session.get(models.ThrottleCounter, key)


def blocked_for(store, email="ann@example.com"):
    row = counter(store, f"email:{email}")
    return row.blocked_until - row.window_started_at if row.blocked_until else timedelta(0)


def set_counter(store, key="email:ann@example.com", **values):
    """Move a counter's clock, as if time had passed."""
    with store.transaction() as tx:
        row = tx.session.get(models.ThrottleCounter, key)
        for name, value in values.items():
            setattr(row, name, value(getattr(row, name)) if callable(value) else value)


def test_attempts_on_one_email_wait_a_growing_delay_never_a_lockout(store):
    for n in range(domain.FREE_ATTEMPTS_PER_EMAIL - 1):
        attempt(store, client=f"10.0.0.{n}")
    assert blocked_for(store) == timedelta(0)
    attempt(store, client="10.0.1.1")  # the 5th: the next one waits 1 s
    with pytest.raises(TooManyRequests, match="try again in"):
        attempt(store, client="10.0.1.2")
    # the service layer's transaction rolled back: a refused attempt is not counted
    assert counter(store).count == domain.FREE_ATTEMPTS_PER_EMAIL
    assert [domain.email_delay(n, timedelta(seconds=60)).total_seconds() for n in range(4, 13)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_the_owner_gets_in_once_the_short_delay_has_passed_and_the_counter_is_forgotten(store):
    sign_up(store)
    for n in range(domain.FREE_ATTEMPTS_PER_EMAIL + 3):
        if counter(store) is not None:  # as if the delay had passed
            set_counter(store, blocked_until=None)
        attempt(store, client=f"10.0.0.{n}")
    set_counter(store, blocked_until=domain.utcnow())
    attempt(store, client="5.6.7.8")
    assert auth.sign_in(store, "ann@example.com", "secret-pass", "5.6.7.8") is not None
    assert counter(store) is None


def test_repeated_attempts_from_one_client_are_throttled(store):
    for n in range(domain.DEFAULTS.auth_max_failures_per_client):
        attempt(store, f"user{n}@example.com", "9.9.9.9")
    with pytest.raises(TooManyRequests):
        attempt(store, "fresh@example.com", "9.9.9.9")
    attempt(store, "fresh@example.com", "8.8.8.8")


def test_the_throttle_window_passes(store):
    def count():
        with store.transaction() as tx:
            return repository.count(tx.session, "client:9.9.9.9", domain.utcnow(), domain.FAILURE_WINDOW)

    for _ in range(domain.DEFAULTS.auth_max_failures_per_client):
        count()
    set_counter(store, "client:9.9.9.9", window_started_at=lambda at: at - domain.FAILURE_WINDOW - timedelta(seconds=1))
    assert count()[0] == 1


def test_signups_per_client_are_throttled(store):
    for _ in range(domain.DEFAULTS.auth_max_signups_per_client):
        auth.count_signup(store, "7.7.7.7")
    with pytest.raises(TooManyRequests):
        auth.count_signup(store, "7.7.7.7")
    auth.count_signup(store, "7.7.7.8")


def test_the_throttle_rules_need_no_database():
    now = domain.utcnow()
    assert domain.email_throttle(domain.FREE_ATTEMPTS_PER_EMAIL + 1, None, now) == timedelta(seconds=2)
    assert domain.email_throttle(3, now - timedelta(seconds=1), now) == timedelta(0)
    with pytest.raises(TooManyRequests, match="try again in 3 seconds"):
        domain.email_throttle(3, now + timedelta(seconds=2), now)
    domain.check_client_attempts(domain.DEFAULTS.auth_max_failures_per_client, domain.DEFAULTS.auth_max_failures_per_client)
    with pytest.raises(TooManyRequests):
        domain.check_client_attempts(domain.DEFAULTS.auth_max_failures_per_client + 1, domain.DEFAULTS.auth_max_failures_per_client)
    assert domain.client_key("x" * 100) == "x" * domain.MAX_CLIENT_LENGTH and domain.client_key("") is None


def test_sign_in_fields_are_bounded_before_anything_else():
    for email, password in [("a" * 300 + "@b.co", "long-enough"), ("a@b.co", "x" * 65), ("a\x00@b.co", "pw"),
                            (None, "pw"), ("a@b.co", 5)]:
        with pytest.raises(BadRequest, match="Invalid credentials"):
            domain.signin_email(email, password)


def past_the_grace_window(store):
    with store.transaction() as tx:
        for token in tx.session.query(models.RefreshToken).filter(models.RefreshToken.rotated_at.isnot(None)):
            token.rotated_at -= timedelta(seconds=domain.DEFAULTS.refresh_grace_seconds + 1)


def test_refresh_rotates_and_reuse_revokes_the_family(store):
    first = sign_up(store)
    second = auth.refresh(store, first["refreshToken"])
    assert second["refreshToken"] != first["refreshToken"]
    past_the_grace_window(store)
    # the old one presented again: reuse -> the whole family, including the new one, is revoked
    with pytest.raises(NotAuthorized, match="reuse"):
        auth.refresh(store, first["refreshToken"])
    with pytest.raises(NotAuthorized):
        auth.refresh(store, second["refreshToken"])


def test_expired_or_unknown_refresh_tokens_are_refused(store):
    first = sign_up(store)
    with store.transaction() as tx:
        token = tx.session.query(models.RefreshToken).one()
        token.expires_at = token.created_at - timedelta(seconds=1)
    with pytest.raises(NotAuthorized):
        auth.refresh(store, first["refreshToken"])
    for made_up in ("made-up", "", None, "x" * 201):
        with pytest.raises(NotAuthorized):
            auth.refresh(store, made_up)


def test_signout_revokes_the_refresh_token(store):
    first = sign_up(store)
    auth.sign_out(store, first["refreshToken"])
    with pytest.raises(NotAuthorized):
        auth.refresh(store, first["refreshToken"])


def test_revoked_user_cannot_refresh_nor_sign_in_until_restored(store):
    first = sign_up(store)
    assert auth.revoke_user(store, "ANN@example.com")["revokedTokens"] == 1
    assert auth.find_user(store, "ann@example.com")["revoked"] is True
    with pytest.raises(NotAuthorized):
        auth.refresh(store, first["refreshToken"])
    with pytest.raises(Forbidden):
        auth.sign_in(store, "ann@example.com", "secret-pass")
    auth.restore_user(store, "ann@example.com")
    assert auth.find_user(store, "ann@example.com")["revoked"] is False
    assert auth.sign_in(store, "ann@example.com", "secret-pass")["user"]["email"] == "ann@example.com"


def test_two_tabs_refreshing_with_one_token_within_the_grace_window_get_the_same_successor(store, session):
    first = sign_up(store)
    tab_a = auth.refresh(store, first["refreshToken"])
    tab_b = auth.refresh(store, first["refreshToken"])
    assert tab_b["refreshToken"] == tab_a["refreshToken"] != first["refreshToken"]
    assert tokens.verify_access_token(tab_b["accessToken"])["email"] == "ann@example.com"
    assert auth.refresh(store, tab_b["refreshToken"]) is not None  # the family lives on
    assert session.query(models.RefreshToken).filter(models.RefreshToken.revoked_at.isnot(None)).count() == 0


def test_successors_cannot_be_guessed_without_auths_key(store, monkeypatch):
    from services.common import keys

    first = sign_up(store)
    successor = domain.successor_of(first["refreshToken"])
    private, public = keys.new_key_pair()
    monkeypatch.setenv("JWT_PRIVATE_KEY", private)
    assert domain.successor_of(first["refreshToken"]) != successor


def test_sign_out_and_revoke_user_are_published_as_revocations(store):
    first = sign_up(store)
    auth.sign_out(store, first["refreshToken"])
    second = sign_up(store, "bob@example.com")
    auth.revoke_user(store, "bob@example.com")
    page = auth.revocations_since(store, 0)
    sid = tokens.access_claims(first["accessToken"])["sid"]
    assert [(r["userId"], r["sessionId"]) for r in page["revocations"]] == [
        (first["user"]["id"], sid), (second["user"]["id"], None)]
    assert auth.revocations_since(store, page["last"]) == {"revocations": [], "last": page["last"]}
