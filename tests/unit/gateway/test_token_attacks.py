"""Forged, altered, expired or revoked access tokens get nobody signed in at the gateway."""
import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.common import keys, tokens

USER = "a" * 32


def claims(**overrides):
    now = int(time.time())
    base = {"iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": USER, "email": "ann@example.com", "sid": "s" * 32,
            "typ": "access", "jti": "j", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload, key=None, algorithm="EdDSA"):
    return jwt.encode(payload, key or keys.private_key(), algorithm=algorithm)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def public_pem() -> bytes:
    return keys.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def forged(kind: str) -> str:
    if kind == "alg-none":
        return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    if kind == "hs256-with-the-public-key":  # algorithm confusion
        header, payload = b64({"alg": "HS256", "typ": "JWT"}), b64(claims())
        import hashlib
        import hmac
        signature = hmac.new(public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    if kind == "wrong-key":
        from cryptography.hazmat.primitives.asymmetric import ed25519
        return signed(claims(), ed25519.Ed25519PrivateKey.generate())
    if kind == "expired-beyond-leeway":
        return signed(claims(iat=int(time.time()) - 700, exp=int(time.time()) - tokens.DEFAULT_LEEWAY - 5))
    if kind == "tampered":
        header, _payload, signature = signed(claims()).split(".")
        return f"{header}.{b64(claims(sub='b' * 32))}.{signature}"
    if kind == "wrong-issuer":
        return signed(claims(iss="someone-else"))
    if kind == "wrong-audience":
        return signed(claims(aud="another-api"))
    if kind == "no-audience":
        return signed(claims(aud=None))
    if kind == "not-an-access-token":
        return signed(claims(typ="refresh"))
    if kind == "garbage":
        return "abc.def.ghi"
    raise AssertionError(kind)


KINDS = ["alg-none", "hs256-with-the-public-key", "wrong-key", "expired-beyond-leeway", "tampered", "wrong-issuer",
         "wrong-audience", "no-audience", "not-an-access-token", "garbage"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("carrier", ["cookie", "bearer"])
def test_forged_tokens_sign_nobody_in(client, rpc, kind, carrier):
    token = forged(kind)
    if carrier == "cookie":
        client.set_cookie("ticketing_access", token)
        headers = {}
    else:
        headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/users/currentuser", headers=headers).get_json() == {"currentUser": None}
    assert client.post("/api/tickets", json={"title": "x", "price": 1}, headers=headers).status_code == 401
    assert rpc.calls == []


def test_a_genuine_token_works_and_clock_skew_within_the_leeway_is_tolerated(client):
    now = int(time.time())
    for token in (signed(claims()), signed(claims(iat=now - 600, exp=now - tokens.DEFAULT_LEEWAY + 5))):
        client.set_cookie("ticketing_access", token)
        assert client.get("/api/users/currentuser").get_json()["currentUser"] == {"id": USER,
                                                                                  "email": "ann@example.com"}


def test_tokens_of_a_signed_out_session_or_a_revoked_user_stop_as_soon_as_the_list_has_them(app, client, rpc):
    before = int(time.time()) - 5
    session_token = signed(claims(sid="x" * 32))
    user_token = signed(claims(sub="b" * 32, iat=before))
    other = signed(claims(sub="c" * 32))
    rpc.auth.revocations_since = lambda after: {"revocations": [
        {"id": 1, "userId": USER, "sessionId": "x" * 32, "notBefore": time.time()},
        {"id": 2, "userId": "b" * 32, "sessionId": None, "notBefore": time.time()},
    ], "last": 2}
    app.revocations.poll_once()
    assert app.revocations.last == 2
    for token, signed_in in ((session_token, False), (user_token, False), (other, True)):
        client.set_cookie("ticketing_access", token)
        assert (client.get("/api/users/currentuser").get_json()["currentUser"] is not None) is signed_in
    # a new sign-in of the same user (another session) is not affected by the sign-out
    client.set_cookie("ticketing_access", signed(claims(sid="y" * 32)))
    assert client.get("/api/users/currentuser").get_json()["currentUser"]["id"] == USER
