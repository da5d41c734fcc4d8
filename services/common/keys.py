"""The keys of access tokens: auth signs with a private key, the gateway verifies with the public one.

So only auth can mint a token; a gateway (the internet-facing part) that leaks
leaks nothing that signs. Keys are PEM (Ed25519, or RSA of at least 2048 bits)
in ``JWT_PRIVATE_KEY`` / ``JWT_PUBLIC_KEY`` (the public key, or a certificate of
it) or in the files named by
``JWT_PRIVATE_KEY_FILE`` / ``JWT_PUBLIC_KEY_FILE``. A missing or unreadable key
stops the process at start, in every environment. ``ticketing keys DIR`` writes
a fresh pair (and a frontend ``SECRET_KEY``); ``ticketing up`` makes them per run.
"""
from __future__ import annotations

import functools
import hashlib
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .config import ConfigurationError, secret

MIN_RSA_BITS = 2048
#: the files ``write_keys`` makes, and the variable each one feeds
KEY_FILES = {"JWT_PRIVATE_KEY_FILE": "jwt-private.pem", "JWT_PUBLIC_KEY_FILE": "jwt-public.pem",
             "SECRET_KEY_FILE": "secret-key"}


def _pem(value: str) -> bytes:
    # an env file cannot hold newlines: accept "\n" escapes too
    return value.replace("\\n", "\n").strip().encode() + b"\n"


@functools.lru_cache(maxsize=4)
def _load_private(value: str):
    try:
        key = serialization.load_pem_private_key(_pem(value), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError("JWT_PRIVATE_KEY is not a PEM private key") from None
    _check_kind(key, "JWT_PRIVATE_KEY")
    return key


@functools.lru_cache(maxsize=4)
def _load_public(value: str):
    try:
        if "BEGIN CERTIFICATE" in value:  # a certificate of the key (what the Helm chart can generate)
            key = x509.load_pem_x509_certificate(_pem(value)).public_key()
        else:
            key = serialization.load_pem_public_key(_pem(value))
    except (ValueError, TypeError):
        raise ConfigurationError("JWT_PUBLIC_KEY is not a PEM public key") from None
    _check_kind(key, "JWT_PUBLIC_KEY")
    return key


def _check_kind(key, name: str) -> None:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)) and key.key_size >= MIN_RSA_BITS:
        return
    raise ConfigurationError(f"{name} must be an Ed25519 key or an RSA key of at least {MIN_RSA_BITS} bits")


def algorithm_of(key) -> str:
    """The one JWT algorithm a key is used with (a token naming another one is refused)."""
    return "EdDSA" if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)) else "RS256"


def private_key():
    """Auth's signing key; ConfigurationError when missing or not a proper key."""
    value = secret("JWT_PRIVATE_KEY")
    if not value:
        raise ConfigurationError("JWT_PRIVATE_KEY must be set (auth signs access tokens with it; "
                                 "`ticketing keys DIR` writes one)")
    return _load_private(value)


def public_key():
    """The gateway's verifying key; ConfigurationError when missing or not a proper key."""
    value = secret("JWT_PUBLIC_KEY")
    if not value:
        raise ConfigurationError("JWT_PUBLIC_KEY must be set (the gateway verifies access tokens with it; "
                                 "`ticketing keys DIR` writes one)")
    return _load_public(value)


def derived_secret(label: str) -> bytes:
    """A secret of auth's own derived from its private key (e.g. for refresh-token successors)."""
    raw = private_key().private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    return hashlib.sha256(b"ticketing:" + label.encode() + b":" + raw).digest()


def new_key_pair() -> tuple[str, str]:
    """A fresh Ed25519 pair as (private PEM, public PEM)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def write_keys(directory: Path) -> dict[str, str]:
    """Write a fresh key pair and a frontend SECRET_KEY (owner-only files); returns ``{VAR_FILE: path}``."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = new_key_pair()
    contents = {"JWT_PRIVATE_KEY_FILE": private, "JWT_PUBLIC_KEY_FILE": public,
                "SECRET_KEY_FILE": secrets.token_urlsafe(48) + "\n"}
    written = {}
    for variable, name in KEY_FILES.items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(contents[variable])
        written[variable] = str(path)
    return written
