"""Auth rules: sign-up, sign-in with throttling, rotating refresh tokens with reuse detection."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import case, delete, func, literal, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from services.common import config, keys, tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, NotFound, TooManyRequests
from services.common.store import UTCDateTime, utcnow
from services.common.validation import MAX_EMAIL_LENGTH, Email, Input, Password, forbidden_character, new_id, validate

from . import passwords
from .models import RefreshToken, Revocation, ThrottleCounter, User

#: Sign-in attempts are counted per email and per client address *before* the password is
#: checked (so a burst of parallel guesses is counted too); a success forgets them again.
#: Per email, the first FREE_ATTEMPTS_PER_EMAIL are free, then each further attempt must wait a
#: delay that doubles up to MAX_EMAIL_DELAY: slow for a guesser, never a long lockout of the owner.
FREE_ATTEMPTS_PER_EMAIL = 5
MAX_EMAIL_DELAY = timedelta(seconds=config.env_int("AUTH_MAX_EMAIL_DELAY_SECONDS", 60))
#: per client address, a hard limit per window (an attacker's own address, not a victim's account)
MAX_FAILURES_PER_CLIENT = config.env_int("AUTH_MAX_FAILURES_PER_CLIENT", 20)
#: sign-ups per client address per window (each costs a memory-hard hash)
MAX_SIGNUPS_PER_CLIENT = config.env_int("AUTH_MAX_SIGNUPS_PER_CLIENT", 10)
FAILURE_WINDOW = timedelta(minutes=15)
#: sign-up allows 64; older accounts were never longer
MAX_PASSWORD_LENGTH = 64
#: an address or a test label; anything longer is not an address
MAX_CLIENT_LENGTH = 64


class Credentials(Input):
    email: Email
    password: Password


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_session(session, user: User, family_id: str | None = None, refresh: str | None = None) -> dict:
    """Access token + a new refresh token (stored hashed) for ``user``."""
    refresh = refresh or secrets.token_urlsafe(32)
    family_id = family_id or new_id()
    session.add(RefreshToken(
        id=new_id(), user_id=user.id, family_id=family_id, token_hash=_hash_token(refresh),
        expires_at=utcnow() + timedelta(seconds=config.refresh_token_ttl()),
    ))
    return _session_of(user, family_id, refresh)


def _session_of(user: User, family_id: str, refresh: str) -> dict:
    return {
        "user": user.to_dict(),
        "accessToken": tokens.issue_access_token(user.id, user.email, session_id=family_id),
        "refreshToken": refresh,
    }


def successor_of(presented: str) -> str:
    """The refresh token that replaces ``presented``: derived from it with a key only auth holds,
    so a second tab refreshing with the same token within the grace window gets the very same
    successor (nothing but its hash is stored)."""
    digest = hmac.new(keys.derived_secret("refresh-successor"), presented.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_credentials(email, password) -> Credentials:
    """Sign-up's rules, checked before any counter, hash or row is touched."""
    return validate(Credentials, {"email": email, "password": password})


def sign_up(session, email, password) -> dict:
    creds = check_credentials(email, password)
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


def _client(client) -> str | None:
    return str(client)[:MAX_CLIENT_LENGTH] if client else None


def count(session, key: str, now=None) -> tuple[int, object]:
    """Add one to ``key``'s counter in its window, atomically; returns (count, blocked_until).

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (PostgreSQL and SQLite alike), so two
    simultaneous first attempts both count instead of one failing on the primary key. A window
    that has passed starts again at 1."""
    now = now or utcnow()
    table = ThrottleCounter.__table__
    insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}[session.bind.dialect.name]
    at = literal(now, UTCDateTime())
    stale = table.c.window_started_at <= literal(now - FAILURE_WINDOW, UTCDateTime())
    statement = insert(table).values(key=key, window_started_at=now, count=1, blocked_until=None)
    statement = statement.on_conflict_do_update(index_elements=[table.c.key], set_={
        "count": case((stale, 1), else_=table.c.count + 1),
        "window_started_at": case((stale, at), else_=table.c.window_started_at),
        "blocked_until": case((stale, null()), else_=table.c.blocked_until),
    }).returning(table.c.count, table.c.blocked_until)
    counted, blocked_until = session.execute(statement).one()
    return counted, blocked_until


def email_delay(attempts: int) -> timedelta:
    """How long the next attempt on an email waits after ``attempts`` in the window."""
    if attempts < FREE_ATTEMPTS_PER_EMAIL:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (attempts - FREE_ATTEMPTS_PER_EMAIL)), MAX_EMAIL_DELAY)


def signin_email(email, password) -> str:
    """The normalised email of a sign-in, refused (400) before any key is built or hash is run."""
    if (not isinstance(email, str) or not isinstance(password, str) or len(email) > MAX_EMAIL_LENGTH
            or len(password) > MAX_PASSWORD_LENGTH or forbidden_character(email) is not None):
        raise BadRequest("Invalid credentials")
    return email.strip().lower()


def count_signin_attempt(session, email: str, client: str | None) -> None:
    """Record one sign-in attempt before the password is checked; 429 when over a limit.

    The caller commits this in its own transaction first, so the attempt counts even if the
    process dies while hashing, and however many attempts run in parallel."""
    now = utcnow()
    client = _client(client)
    if client:
        attempts, _ = count(session, f"client:{client}", now)
        if attempts > MAX_FAILURES_PER_CLIENT:
            raise TooManyRequests()
    key = f"email:{email}"
    attempts, blocked_until = count(session, key, now)
    if blocked_until is not None and blocked_until > now:
        wait = int((blocked_until - now).total_seconds()) + 1
        raise TooManyRequests(f"Too many attempts, try again in {wait} second{'s' if wait != 1 else ''}")
    delay = email_delay(attempts)
    if delay:
        session.execute(update(ThrottleCounter).where(ThrottleCounter.key == key)
                        .values(blocked_until=now + delay))


def count_signup(session, client: str | None) -> None:
    """Record one sign-up from ``client`` (before hashing); 429 over the limit."""
    client = _client(client)
    if client and count(session, f"signup:{client}")[0] > MAX_SIGNUPS_PER_CLIENT:
        raise TooManyRequests()


def sign_in(session, email: str, password: str, client: str | None = None) -> dict | None:
    """Returns the new session, or None for bad credentials. The attempt was counted already
    (:func:`count_signin_attempt`); a success forgets it."""
    user = session.scalars(select(User).where(User.email == email)).first()
    if not passwords.verify_password(user.password_hash if user else None, password.strip()):
        return None
    if user.revoked_at is not None:
        raise Forbidden("This account has been disabled")
    session.execute(delete(ThrottleCounter).where(ThrottleCounter.key == f"email:{email}"))
    if _client(client):
        session.execute(update(ThrottleCounter).where(ThrottleCounter.key == f"client:{_client(client)}",
                                                      ThrottleCounter.count > 0)
                        .values(count=ThrottleCounter.count - 1))
    return issue_session(session, user)


def refresh(session, presented: str) -> dict | None:
    """Rotate a refresh token. Presenting a rotated one again within REFRESH_GRACE_SECONDS (two
    tabs refreshing together) gives the same successor; later, it is reuse: the whole family is
    revoked (returns None; the caller commits that, then refuses)."""
    if not isinstance(presented, str) or not presented or len(presented) > 200:
        raise NotAuthorized()
    token = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == _hash_token(presented))
                            .with_for_update()).first()
    now = utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise NotAuthorized()
    user = session.get(User, token.user_id)
    if user is None or user.revoked_at is not None:
        raise NotAuthorized()
    successor = successor_of(presented)
    if token.rotated_at is not None:
        if now - token.rotated_at <= timedelta(seconds=refresh_grace_seconds()):
            current = session.scalars(select(RefreshToken).where(
                RefreshToken.token_hash == _hash_token(successor))).first()
            if current is not None and current.revoked_at is None:
                return _session_of(user, token.family_id, successor)
        revoke_family(session, token.family_id)
        return None
    token.rotated_at = now
    return issue_session(session, user, family_id=token.family_id, refresh=successor)


def refresh_grace_seconds() -> int:
    return config.env_int("REFRESH_GRACE_SECONDS", 10)


def revoke_family(session, family_id: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                               RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


def sign_out(session, presented: str | None) -> None:
    """Revoke the session of ``presented``: its refresh tokens now, its access tokens at the
    gateways within seconds (a revocation they pull)."""
    if not presented or not isinstance(presented, str):
        return
    token = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == _hash_token(presented))).first()
    if token is not None:
        revoke_family(session, token.family_id)
        session.add(Revocation(user_id=token.user_id, session_id=token.family_id, not_before=utcnow()))


def find_user(session, email: str) -> dict:
    """Operators: a user by email, with whether (and since when) they are revoked."""
    user = session.scalars(select(User).where(User.email == str(email).strip().lower())).first()
    if user is None:
        raise NotFound("User not found")
    revoked_at = user.revoked_at.isoformat() if user.revoked_at else None
    return {**user.to_dict(), "revoked": revoked_at is not None, "revokedAt": revoked_at}


def revoke_user(session, email: str) -> dict:
    user = session.scalars(select(User).where(User.email == str(email).strip().lower())).first()
    if user is None:
        raise NotFound("User not found")
    user.revoked_at = utcnow()
    result = session.execute(update(RefreshToken).where(RefreshToken.user_id == user.id,
                                                        RefreshToken.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    session.add(Revocation(user_id=user.id, session_id=None, not_before=user.revoked_at))
    return {"user": user.to_dict(), "revokedTokens": result.rowcount}


def restore_user(session, email: str) -> dict:
    user = session.scalars(select(User).where(User.email == str(email).strip().lower())).first()
    if user is None:
        raise NotFound("User not found")
    user.revoked_at = None
    return user.to_dict()


def revocations_since(session, after: int = 0, limit: int = 1000) -> dict:
    """Revocations newer than id ``after`` that can still matter (an access token lives
    ACCESS_TOKEN_TTL + leeway): what a gateway pulls to refuse revoked access tokens."""
    horizon = utcnow() - timedelta(seconds=config.access_token_ttl() + tokens.leeway())
    after = after if isinstance(after, int) and not isinstance(after, bool) else 0
    rows = session.scalars(select(Revocation).where(Revocation.id > after, Revocation.created_at >= horizon)
                           .order_by(Revocation.id).limit(limit)).all()
    last = rows[-1].id if rows else max(after, session.scalar(select(func.max(Revocation.id))) or 0)
    return {"revocations": [row.to_dict() for row in rows], "last": last}
