import time

import jwt
import pytest

from services.common import config, tokens
from services.common.errors import NotAuthorized


def test_access_token_round_trip(monkeypatch):
    monkeypatch.setenv("JWT_KEY", "unit-test-key-0123456789abcdef0123456789")
    token = tokens.issue_access_token("u1", "a@b.co")
    assert tokens.verify_access_token(token) == {"id": "u1", "email": "a@b.co"}


@pytest.mark.parametrize("tamper", ["expired", "other-key", "garbage", "not-access"])
def test_bad_tokens_are_not_authorized(monkeypatch, tamper):
    monkeypatch.setenv("JWT_KEY", "unit-test-key-0123456789abcdef0123456789")
    if tamper == "expired":
        token = tokens.issue_access_token("u1", "a@b.co", ttl=1, now=time.time() - 10)
    elif tamper == "other-key":
        token = jwt.encode({"sub": "u1", "email": "e", "typ": "access", "exp": time.time() + 60}, "another-key-0123456789abcdef0123456789abc")
    elif tamper == "not-access":
        token = jwt.encode({"sub": "u1", "email": "e", "typ": "refresh", "exp": time.time() + 60}, "unit-test-key-0123456789abcdef0123456789")
    else:
        token = "abc.def.ghi"
    with pytest.raises(NotAuthorized):
        tokens.verify_access_token(token)


def test_jwt_key_required_in_production(monkeypatch):
    monkeypatch.delenv("JWT_KEY", raising=False)
    monkeypatch.setenv("TICKETING_ENV", "production")
    with pytest.raises(config.ConfigurationError):
        config.jwt_key()
    monkeypatch.setenv("TICKETING_ENV", "development")
    assert config.jwt_key() == config.DEV_JWT_KEY


def test_database_url_defaults_to_a_sqlite_file_per_service(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    assert config.database_url("orders") == f"sqlite:///{tmp_path / 'orders.db'}"
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://u@h/db")
    assert config.database_url("orders") == "postgresql+psycopg://u@h/db"


def test_expiration_window_must_be_positive(monkeypatch):
    monkeypatch.setenv("EXPIRATION_WINDOW_SECONDS", "2.5")
    assert config.expiration_window_seconds() == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("EXPIRATION_WINDOW_SECONDS", bad)
        with pytest.raises(config.ConfigurationError):
            config.expiration_window_seconds()
