from datetime import timedelta

import pytest

from services.auth import domain, models
from services.common import tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, TooManyRequests


@pytest.fixture
def session(make_store):
    return make_store("auth").session()


def sign_up(session, email="Ann@Example.com", password="secret-pass"):
    result = domain.sign_up(session, email, password)
    session.commit()
    return result


def test_signup_stores_lower_case_email_and_a_memory_hard_hash(session):
    result = sign_up(session)
    user = session.get(models.User, result["user"]["id"])
    assert user.email == "ann@example.com"
    assert user.password_hash.startswith("$argon2id$") and "secret-pass" not in user.password_hash
    assert tokens.verify_access_token(result["accessToken"])["email"] == "ann@example.com"


def test_email_in_use_whatever_the_case(session):
    sign_up(session)
    with pytest.raises(BadRequest, match="Email in use"):
        domain.sign_up(session, "ANN@example.com", "other-pass")


def test_refresh_tokens_are_stored_hashed(session):
    result = sign_up(session)
    stored = session.query(models.RefreshToken).one()
    assert stored.token_hash != result["refreshToken"] and len(stored.token_hash) == 64


def test_signin_with_wrong_password_or_unknown_email_is_the_same_answer(session):
    sign_up(session)
    assert domain.sign_in(session, "ann@example.com", "wrong") is None
    assert domain.sign_in(session, "nobody@example.com", "secret-pass") is None
    email = domain.signin_email(" ANN@example.com ", " secret-pass ")
    assert domain.sign_in(session, email, " secret-pass ")["user"]["email"] == "ann@example.com"


def attempt(session, email="ann@example.com", client="1.2.3.4"):
    domain.count_signin_attempt(session, email, client)
    session.commit()


def blocked_for(session, email="ann@example.com"):
    row = session.get(models.ThrottleCounter, f"email:{email}")
    session.refresh(row)
    return row.blocked_until - row.window_started_at if row.blocked_until else timedelta(0)


def test_attempts_on_one_email_wait_a_growing_delay_never_a_lockout(session):
    for n in range(domain.FREE_ATTEMPTS_PER_EMAIL - 1):
        attempt(session, client=f"10.0.0.{n}")
    assert blocked_for(session) == timedelta(0)
    attempt(session, client="10.0.1.1")  # the 5th: the next one waits 1 s
    with pytest.raises(TooManyRequests, match="try again in"):
        attempt(session, client="10.0.1.2")
    session.rollback()  # as the service's transaction does: a refused attempt is not counted
    assert session.get(models.ThrottleCounter, "email:ann@example.com").count == domain.FREE_ATTEMPTS_PER_EMAIL
    assert [domain.email_delay(n).total_seconds() for n in range(4, 13)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_the_owner_gets_in_once_the_short_delay_has_passed_and_the_counter_is_forgotten(session):
    sign_up(session)
    for n in range(domain.FREE_ATTEMPTS_PER_EMAIL + 3):
        row = session.get(models.ThrottleCounter, "email:ann@example.com")
        if row is not None:  # as if the delay had passed
            row.blocked_until = None
            session.commit()
        attempt(session, client=f"10.0.0.{n}")
    row = session.get(models.ThrottleCounter, "email:ann@example.com")
    row.blocked_until = domain.utcnow()
    session.commit()
    attempt(session, client="5.6.7.8")
    assert domain.sign_in(session, "ann@example.com", "secret-pass", "5.6.7.8") is not None
    session.commit()
    assert session.get(models.ThrottleCounter, "email:ann@example.com") is None


def test_repeated_attempts_from_one_client_are_throttled(session):
    for n in range(domain.MAX_FAILURES_PER_CLIENT):
        attempt(session, f"user{n}@example.com", "9.9.9.9")
    with pytest.raises(TooManyRequests):
        attempt(session, "fresh@example.com", "9.9.9.9")
    session.rollback()
    attempt(session, "fresh@example.com", "8.8.8.8")


def test_the_throttle_window_passes(session):
    for _ in range(domain.MAX_FAILURES_PER_CLIENT):
        domain.count(session, "client:9.9.9.9")
    row = session.get(models.ThrottleCounter, "client:9.9.9.9")
    row.window_started_at -= domain.FAILURE_WINDOW + timedelta(seconds=1)
    session.commit()
    assert domain.count(session, "client:9.9.9.9")[0] == 1


def test_signups_per_client_are_throttled(session):
    for _ in range(domain.MAX_SIGNUPS_PER_CLIENT):
        domain.count_signup(session, "7.7.7.7")
    with pytest.raises(TooManyRequests):
        domain.count_signup(session, "7.7.7.7")
    domain.count_signup(session, "7.7.7.8")


def test_sign_in_fields_are_bounded_before_anything_else():
    for email, password in [("a" * 300 + "@b.co", "long-enough"), ("a@b.co", "x" * 65), ("a\x00@b.co", "pw"),
                            (None, "pw"), ("a@b.co", 5)]:
        with pytest.raises(BadRequest, match="Invalid credentials"):
            domain.signin_email(email, password)


def past_the_grace_window(session):
    for token in session.query(models.RefreshToken).filter(models.RefreshToken.rotated_at.isnot(None)):
        token.rotated_at -= timedelta(seconds=domain.DEFAULTS.refresh_grace_seconds + 1)
    session.commit()


def test_refresh_rotates_and_reuse_revokes_the_family(session):
    first = sign_up(session)
    second = domain.refresh(session, first["refreshToken"])
    session.commit()
    assert second["refreshToken"] != first["refreshToken"]
    past_the_grace_window(session)
    # the old one presented again: reuse -> the whole family, including the new one, is revoked
    assert domain.refresh(session, first["refreshToken"]) is None
    session.commit()
    with pytest.raises(NotAuthorized):
        domain.refresh(session, second["refreshToken"])


def test_expired_or_unknown_refresh_tokens_are_refused(session):
    first = sign_up(session)
    token = session.query(models.RefreshToken).one()
    token.expires_at = token.created_at - timedelta(seconds=1)
    with pytest.raises(NotAuthorized):
        domain.refresh(session, first["refreshToken"])
    with pytest.raises(NotAuthorized):
        domain.refresh(session, "made-up")


def test_signout_revokes_the_refresh_token(session):
    first = sign_up(session)
    domain.sign_out(session, first["refreshToken"])
    with pytest.raises(NotAuthorized):
        domain.refresh(session, first["refreshToken"])


def test_revoked_user_cannot_refresh_nor_sign_in_until_restored(session):
    first = sign_up(session)
    assert domain.revoke_user(session, "ANN@example.com")["revokedTokens"] == 1
    with pytest.raises(NotAuthorized):
        domain.refresh(session, first["refreshToken"])
    with pytest.raises(Forbidden):
        domain.sign_in(session, "ann@example.com", "secret-pass")
    session.rollback()
    domain.restore_user(session, "ann@example.com")
    assert domain.sign_in(session, "ann@example.com", "secret-pass")["user"]["email"] == "ann@example.com"


def test_two_tabs_refreshing_with_one_token_within_the_grace_window_get_the_same_successor(session):
    first = sign_up(session)
    tab_a = domain.refresh(session, first["refreshToken"])
    session.commit()
    tab_b = domain.refresh(session, first["refreshToken"])
    session.commit()
    assert tab_b["refreshToken"] == tab_a["refreshToken"] != first["refreshToken"]
    assert tokens.verify_access_token(tab_b["accessToken"])["email"] == "ann@example.com"
    assert domain.refresh(session, tab_b["refreshToken"]) is not None  # the family lives on
    assert session.query(models.RefreshToken).filter(models.RefreshToken.revoked_at.isnot(None)).count() == 0


def test_successors_cannot_be_guessed_without_auths_key(session, monkeypatch):
    from services.common import keys

    first = sign_up(session)
    successor = domain.successor_of(first["refreshToken"])
    private, public = keys.new_key_pair()
    monkeypatch.setenv("JWT_PRIVATE_KEY", private)
    assert domain.successor_of(first["refreshToken"]) != successor


def test_sign_out_and_revoke_user_are_published_as_revocations(session):
    first = sign_up(session)
    domain.sign_out(session, first["refreshToken"])
    second = sign_up(session, "bob@example.com")
    domain.revoke_user(session, "bob@example.com")
    session.commit()
    page = domain.revocations_since(session, 0)
    sid = tokens.access_claims(first["accessToken"])["sid"]
    assert [(r["userId"], r["sessionId"]) for r in page["revocations"]] == [
        (first["user"]["id"], sid), (second["user"]["id"], None)]
    assert domain.revocations_since(session, page["last"]) == {"revocations": [], "last": page["last"]}
