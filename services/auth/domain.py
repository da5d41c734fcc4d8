"""Auth rules: sign-up, sign-in with throttling, rotating refresh tokens with reuse detection."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.common import config, tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, NotFound, TooManyRequests
from services.common.store import utcnow
from services.common.validation import MAX_EMAIL_LENGTH, Email, Input, Password, forbidden_character, validate

from . import passwords
from .models import RefreshToken, SigninFailure, User, new_id

#: failed sign-ins allowed per window, per email and per client address
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20
FAILURE_WINDOW = timedelta(minutes=15)
#: sign-up allows 64; older accounts were never longer
MAX_PASSWORD_LENGTH = 64


class Credentials(Input):
    email: Email
    password: Password


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_session(session, user: User, family_id: str | None = None) -> dict:
    """Access token + a new refresh token (stored hashed) for ``user``."""
    refresh = secrets.token_urlsafe(32)
    session.add(RefreshToken(
        id=new_id(), user_id=user.id, family_id=family_id or new_id(), token_hash=_hash_token(refresh),
        expires_at=utcnow() + timedelta(seconds=config.refresh_token_ttl()),
    ))
    return {
        "user": user.to_dict(),
        "accessToken": tokens.issue_access_token(user.id, user.email),
        "refreshToken": refresh,
    }


def sign_up(session, email, password) -> dict:
    creds = validate(Credentials, {"email": email, "password": password})
    if session.scalars(select(User).where(User.email == creds.email)).first():
        raise BadRequest("Email in use", field="email")
    user = User(id=new_id(), email=creds.email, password_hash=passwords.hash_password(creds.password))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a concurrent sign-up with the same email won
        session.rollback()
        raise BadRequest("Email in use", field="email") from None
    return issue_session(session, user)


def _throttle_keys(email: str, client: str | None) -> list[tuple[str, int]]:
    keys = [(f"email:{email}", MAX_FAILURES_PER_EMAIL)]
    if client:
        keys.append((f"client:{client}", MAX_FAILURES_PER_CLIENT))
    return keys


def _is_throttled(session, keys) -> bool:
    now = utcnow()
    for key, limit in keys:
        row = session.get(SigninFailure, key)
        if row and now - row.window_started_at < FAILURE_WINDOW and row.count >= limit:
            return True
    return False


def record_failure(session, email: str, client: str | None) -> None:
    now = utcnow()
    for key, _limit in _throttle_keys(email, client):
        row = session.get(SigninFailure, key)
        if row is None:
            session.add(SigninFailure(key=key, window_started_at=now, count=1))
        elif now - row.window_started_at >= FAILURE_WINDOW:
            row.window_started_at, row.count = now, 1
        else:
            row.count += 1


def sign_in(session, email, password, client: str | None = None) -> dict | None:
    """Returns the new session, or None for bad credentials (the caller records the failure
    in its own transaction, which must commit even though sign-in fails)."""
    if (not isinstance(email, str) or not isinstance(password, str) or len(email) > MAX_EMAIL_LENGTH
            or len(password) > MAX_PASSWORD_LENGTH or forbidden_character(email) is not None):
        # refused before any database key is built from it or any hashing is done
        raise BadRequest("Invalid credentials")
    email = email.strip().lower()
    if _is_throttled(session, _throttle_keys(email, client)):
        raise TooManyRequests()
    user = session.scalars(select(User).where(User.email == email)).first()
    if not passwords.verify_password(user.password_hash if user else None, password.strip()):
        return None
    if user.revoked_at is not None:
        raise Forbidden("This account has been disabled")
    session.query(SigninFailure).filter(SigninFailure.key == f"email:{email}").delete()
    return issue_session(session, user)


def refresh(session, presented: str) -> dict:
    """Rotate a refresh token. Presenting a rotated one again revokes its whole family."""
    if not isinstance(presented, str) or not presented:
        raise NotAuthorized()
    token = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == _hash_token(presented))
                            .with_for_update()).first()
    now = utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise NotAuthorized()
    if token.rotated_at is not None:
        revoke_family(session, token.family_id)
        return None  # the caller commits the revocation, then refuses
    user = session.get(User, token.user_id)
    if user is None or user.revoked_at is not None:
        raise NotAuthorized()
    token.rotated_at = now
    return issue_session(session, user, family_id=token.family_id)


def revoke_family(session, family_id: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                               RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


def sign_out(session, presented: str | None) -> None:
    if not presented:
        return
    token = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == _hash_token(presented))).first()
    if token is not None:
        revoke_family(session, token.family_id)


def revoke_user(session, email: str) -> dict:
    user = session.scalars(select(User).where(User.email == str(email).strip().lower())).first()
    if user is None:
        raise NotFound("User not found")
    user.revoked_at = utcnow()
    result = session.execute(update(RefreshToken).where(RefreshToken.user_id == user.id,
                                                        RefreshToken.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return {"user": user.to_dict(), "revokedTokens": result.rowcount}


def restore_user(session, email: str) -> dict:
    user = session.scalars(select(User).where(User.email == str(email).strip().lower())).first()
    if user is None:
        raise NotFound("User not found")
    user.revoked_at = None
    return user.to_dict()
