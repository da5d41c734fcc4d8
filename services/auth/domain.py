"""Auth rules, without a database: what a valid sign-up or sign-in is, how throttling decides,
what a session (access + refresh token) is, when a presented refresh token rotates, repeats or is reuse.

The service layer (:mod:`services.auth.service_layer`) loads and saves through
:mod:`services.auth.repository` and asks these rules what to do.

Limits and lifetimes come from auth's settings (``settings=``, the service passes its own);
without them, the settings' defaults."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from services.common import keys, tokens
from services.common.errors import BadRequest, Forbidden, NotAuthorized, TooManyRequests
from services.common.events import utcnow
from services.common.validation import (MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH, Credentials, forbidden_character,
                                         validate)

from . import passwords
from .models import RefreshToken, Revocation, User, new_id
from .settings import AuthSettings

DEFAULTS = AuthSettings()

#: Sign-in attempts are counted per email and per client address *before* the password is
#: checked (so a burst of parallel guesses is counted too); a success forgets them again.
#: Per email, the first FREE_ATTEMPTS_PER_EMAIL are free, then each further attempt must wait a
#: delay that doubles up to ``AUTH_MAX_EMAIL_DELAY_SECONDS``: slow for a guesser, never a long
#: lockout of the owner. Per client address, a hard limit per window (``AUTH_MAX_FAILURES_PER_CLIENT``:
#: an attacker's own address, not a victim's account), and one of sign-ups
#: (``AUTH_MAX_SIGNUPS_PER_CLIENT``: each costs a memory-hard hash).
FREE_ATTEMPTS_PER_EMAIL = 5
FAILURE_WINDOW = timedelta(minutes=15)
#: an address or a test label; anything longer is not an address
MAX_CLIENT_LENGTH = 64

EMAIL_IN_USE = "Email in use"


def hash_token(token: str) -> str:
    """What is stored of a refresh token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token(user: User, family_id: str, refresh: str, settings: AuthSettings = DEFAULTS) -> RefreshToken:
    """The row of a new refresh token of ``user`` in ``family_id`` (stored hashed)."""
    return RefreshToken(id=new_id(), user_id=user.id, family_id=family_id, token_hash=hash_token(refresh),
                        expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl))


def new_session(user: User, family_id: str | None = None, refresh: str | None = None,
                settings: AuthSettings = DEFAULTS) -> tuple[RefreshToken, dict]:
    """A new session of ``user``: the refresh token's row to store, and what the caller gets."""
    refresh = refresh or secrets.token_urlsafe(32)
    family_id = family_id or new_id()
    return new_refresh_token(user, family_id, refresh, settings), session_of(user, family_id, refresh, settings)


def session_of(user: User, family_id: str, refresh: str, settings: AuthSettings = DEFAULTS) -> dict:
    """Access token + refresh token of ``user``'s session ``family_id``."""
    return {
        "user": user.to_dict(),
        "accessToken": tokens.issue_access_token(user.id, user.email, session_id=family_id,
                                                 ttl=settings.access_token_ttl),
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


def new_user(creds: Credentials) -> User:
    """A new user with a memory-hard hash of the password."""
    return User(id=new_id(), email=creds.email, password_hash=passwords.hash_password(creds.password))


def client_key(client) -> str | None:
    """A client address as counted (None: no address given)."""
    return str(client)[:MAX_CLIENT_LENGTH] if client else None


def email_delay(attempts: int, longest: timedelta) -> timedelta:
    """How long the next attempt on an email waits after ``attempts`` in the window (at most ``longest``)."""
    if attempts < FREE_ATTEMPTS_PER_EMAIL:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (attempts - FREE_ATTEMPTS_PER_EMAIL)), longest)


def signin_email(email, password) -> str:
    """The normalised email of a sign-in, refused (400) before any key is built or hash is run."""
    if (not isinstance(email, str) or not isinstance(password, str) or len(email) > MAX_EMAIL_LENGTH
            or len(password) > MAX_PASSWORD_LENGTH or forbidden_character(email) is not None):
        raise BadRequest("Invalid credentials")
    return email.strip().lower()


def check_client_attempts(attempts: int, limit: int) -> None:
    """429 once a client address has made more than ``limit`` attempts in the window."""
    if attempts > limit:
        raise TooManyRequests()


def email_throttle(attempts: int, blocked_until: datetime | None, now: datetime,
                   settings: AuthSettings = DEFAULTS) -> timedelta:
    """The ``attempts``-th attempt on an email: 429 while it is blocked, else the delay the next
    one must wait (0: none)."""
    if blocked_until is not None and blocked_until > now:
        wait = int((blocked_until - now).total_seconds()) + 1
        raise TooManyRequests(f"Too many attempts, try again in {wait} second{'s' if wait != 1 else ''}")
    return email_delay(attempts, timedelta(seconds=settings.auth_max_email_delay_seconds))


def check_may_sign_in(user: User) -> None:
    """The password was right: 403 if an operator revoked the account."""
    if user.revoked_at is not None:
        raise Forbidden("This account has been disabled")


def check_presented(presented) -> str:
    """A refresh token as presented: 401 unless it looks like one of ours."""
    if not isinstance(presented, str) or not presented or len(presented) > 200:
        raise NotAuthorized()
    return presented


def check_live(token: RefreshToken | None, now: datetime) -> RefreshToken:
    """401 unless the presented token is known, not revoked and not expired."""
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise NotAuthorized()
    return token


def check_may_refresh(user: User | None) -> User:
    """401 if the token's user is gone or revoked."""
    if user is None or user.revoked_at is not None:
        raise NotAuthorized()
    return user


def within_grace(token: RefreshToken, now: datetime, settings: AuthSettings = DEFAULTS) -> bool:
    """A rotated token presented again this soon is a second tab, not reuse (REFRESH_GRACE_SECONDS)."""
    return now - token.rotated_at <= timedelta(seconds=settings.refresh_grace_seconds)


def normal_email(email) -> str:
    """An email as stored (operators may type it in any case)."""
    return str(email).strip().lower()


def user_view(user: User) -> dict:
    """Operators: a user with whether (and since when) they are revoked."""
    revoked_at = user.revoked_at.isoformat() if user.revoked_at else None
    return {**user.to_dict(), "revoked": revoked_at is not None, "revokedAt": revoked_at}


def signed_out(token: RefreshToken, now: datetime) -> Revocation:
    """The revocation of one signed-out session (its access tokens)."""
    return Revocation(user_id=token.user_id, session_id=token.family_id, not_before=now)


def revoked(user: User) -> Revocation:
    """The revocation of every access token of ``user`` issued until now."""
    return Revocation(user_id=user.id, session_id=None, not_before=user.revoked_at)


def revocation_horizon(now: datetime, settings: AuthSettings = DEFAULTS) -> datetime:
    """Revocations older than this cannot matter: an access token lives ACCESS_TOKEN_TTL + leeway."""
    return now - timedelta(seconds=settings.access_token_ttl + settings.jwt_leeway_seconds)


def revocation_cursor(after) -> int:
    """The id a gateway says it has seen (anything but an int: from the start)."""
    return after if isinstance(after, int) and not isinstance(after, bool) else 0
