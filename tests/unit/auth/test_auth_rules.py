from datetime import timedelta

import pytest

from services.auth import domain, models
from services.common import tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, TooManyRequests


@pytest.fixture
def session(make_session):
    return make_session(models)


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
    assert domain.sign_in(session, " ANN@example.com ", " secret-pass ")["user"]["email"] == "ann@example.com"


def test_repeated_failures_for_one_email_are_throttled(session):
    sign_up(session)
    for _ in range(domain.MAX_FAILURES_PER_EMAIL):
        assert domain.sign_in(session, "ann@example.com", "wrong", "1.2.3.4") is None
        domain.record_failure(session, "ann@example.com", "1.2.3.4")
    with pytest.raises(TooManyRequests):
        domain.sign_in(session, "ann@example.com", "secret-pass", "5.6.7.8")


def test_repeated_failures_from_one_client_are_throttled(session):
    for n in range(domain.MAX_FAILURES_PER_CLIENT):
        domain.record_failure(session, f"user{n}@example.com", "9.9.9.9")
    with pytest.raises(TooManyRequests):
        domain.sign_in(session, "fresh@example.com", "whatever", "9.9.9.9")
    assert domain.sign_in(session, "fresh@example.com", "whatever", "8.8.8.8") is None


def test_the_throttle_window_passes(session):
    for _ in range(domain.MAX_FAILURES_PER_EMAIL):
        domain.record_failure(session, "ann@example.com", None)
    row = session.get(models.SigninFailure, "email:ann@example.com")
    row.window_started_at -= domain.FAILURE_WINDOW + timedelta(seconds=1)
    assert domain.sign_in(session, "ann@example.com", "x") is None  # not throttled any more


def test_refresh_rotates_and_reuse_revokes_the_family(session):
    first = sign_up(session)
    second = domain.refresh(session, first["refreshToken"])
    session.commit()
    assert second["refreshToken"] != first["refreshToken"]
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
    domain.restore_user(session, "ann@example.com")
    assert domain.sign_in(session, "ann@example.com", "secret-pass")["user"]["email"] == "ann@example.com"
