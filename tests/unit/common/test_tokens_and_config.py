import time

import jwt
import pytest

from services.common import config, tokens
from services.common.errors import NotAuthorized


def test_access_token_round_trip():
    token = tokens.issue_access_token("u1", "a@b.co", session_id="s1")
    assert tokens.verify_access_token(token) == {"id": "u1", "email": "a@b.co"}
    claims = tokens.access_claims(token)
    assert claims["iss"] == "ticketing-auth" and claims["aud"] == "ticketing-api" and claims["sid"] == "s1"
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


@pytest.mark.parametrize("value", [None, "", "change-me-secret-key", "dev-only-insecure-frontend-secret",
                                   "short-but-random-4f1c", "x" * 31])
def test_missing_placeholder_or_short_secrets_are_refused_in_every_environment(value):
    with pytest.raises(config.ConfigurationError):
        config.require_secret("SECRET_KEY", value)
    assert config.require_secret("SECRET_KEY", "k" * 16 + "9f3a0c5e7b1d2468") == "k" * 16 + "9f3a0c5e7b1d2468"


@pytest.mark.parametrize("variable", ["JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"])
@pytest.mark.parametrize("value", [None, "change-me-jwt-key", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END"])
def test_token_keys_must_be_proper_keys(monkeypatch, variable, value):
    from services.common import keys

    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    load = keys.private_key if variable == "JWT_PRIVATE_KEY" else keys.public_key
    with pytest.raises(config.ConfigurationError):
        load()


def test_a_weak_rsa_key_is_refused(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from services.common import keys

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    monkeypatch.setenv("JWT_PRIVATE_KEY", weak.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()).decode())
    with pytest.raises(config.ConfigurationError, match="2048"):
        keys.private_key()


def test_keys_can_come_from_files(monkeypatch, tmp_path):
    from services.common import keys

    written = keys.write_keys(tmp_path)
    for variable in ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(f"{variable}_FILE", written[f"{variable}_FILE"])
    assert (tmp_path / "jwt-private.pem").stat().st_mode & 0o777 == 0o600
    assert tokens.verify_access_token(tokens.issue_access_token("u", "a@b.co"))["id"] == "u"
    assert len(config.require_secret("SECRET_KEY", config.secret("SECRET_KEY"))) >= 32


def test_database_url_defaults_to_a_sqlite_file_per_service(monkeypatch, tmp_path):
    from services.orders.settings import OrdersSettings

    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    assert OrdersSettings.load().database_url() == f"sqlite:///{tmp_path / 'orders.db'}"
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://u@h/db")
    assert OrdersSettings.load().database_url() == "postgresql+psycopg://u@h/db"
    assert OrdersSettings.load().nameko_config()["DB_URIS"] == {"orders:Base": "postgresql+psycopg://u@h/db"}


def test_expiration_window_must_be_positive(monkeypatch):
    from services.orders.settings import OrdersSettings

    monkeypatch.setenv("EXPIRATION_WINDOW_SECONDS", "2.5")
    assert OrdersSettings.load().expiration_window_seconds == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("EXPIRATION_WINDOW_SECONDS", bad)
        with pytest.raises(config.ConfigurationError, match="EXPIRATION_WINDOW_SECONDS must be"):
            OrdersSettings.load()


def test_the_public_key_may_come_as_a_certificate(monkeypatch):
    """The Helm chart generates the pair as a key and a self-signed certificate of it."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    from services.common import keys

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ticketing-auth")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, None))
    monkeypatch.setenv("JWT_PRIVATE_KEY", key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()).decode())
    monkeypatch.setenv("JWT_PUBLIC_KEY", cert.public_bytes(serialization.Encoding.PEM).decode())
    assert tokens.verify_access_token(tokens.issue_access_token("u", "a@b.co"))["id"] == "u"
