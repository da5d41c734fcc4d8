"""The auth service layer: each use in its own transaction(s).

:mod:`services.auth.service` parses a request and calls one function here; the function opens
the transaction (``store``: the service's :class:`~services.common.store.Store`), loads and
saves through :mod:`~services.auth.repository` and asks :mod:`~services.auth.domain` what
the rules say. Sign-up and sign-in count the attempt in a transaction of its own, committed
before the (slow, memory-hard) password hash runs, so an attempt counts even if the process
dies while hashing, and however many attempts run in parallel.
"""
from __future__ import annotations

from services.common.errors import BadRequest, NotAuthorized, NotFound
from services.common.validation import is_valid_id

from . import domain, passwords, repository
from .settings import AuthSettings

DEFAULTS = domain.DEFAULTS


def _issue(session, user, family_id: str | None = None, refresh: str | None = None,
           settings: AuthSettings = DEFAULTS) -> dict:
    row, issued = domain.new_session(user, family_id, refresh, settings)
    repository.add(session, row)
    return issued


# -- sign-up and sign-in ---------------------------------------------------------------

def signup(store, email, password, client=None, settings: AuthSettings = DEFAULTS) -> dict:
    """A new user and their first session; 400 (invalid, email in use), 429 (too many from ``client``)."""
    domain.check_credentials(email, password)  # 400 before anything is counted or hashed
    if client:
        count_signup(store, client, settings)
    return sign_up(store, email, password, settings)


def count_signup(store, client: str | None, settings: AuthSettings = DEFAULTS) -> None:
    """Record one sign-up from ``client`` (before hashing), committed; 429 over the limit."""
    client = domain.client_key(client)
    if not client:
        return
    with store.transaction() as tx:
        attempts, _ = repository.count(tx.session, f"signup:{client}", domain.utcnow(), domain.FAILURE_WINDOW)
        domain.check_client_attempts(attempts, settings.auth_max_signups_per_client)


def sign_up(store, email, password, settings: AuthSettings = DEFAULTS) -> dict:
    creds = domain.check_credentials(email, password)
    with store.transaction() as tx:
        if repository.user_by_email(tx.session, creds.email):
            raise BadRequest(domain.EMAIL_IN_USE, field="email")
        user = domain.new_user(creds)
        if not repository.add_user(tx.session, user):  # a concurrent sign-up with the same email won
            raise BadRequest(domain.EMAIL_IN_USE, field="email")
        return _issue(tx.session, user, settings=settings)


def signin(store, email, password, client=None, settings: AuthSettings = DEFAULTS) -> dict:
    """A new session for the right password; 400 for wrong credentials, 403 revoked, 429 throttled."""
    email = domain.signin_email(email, password)
    # counted and committed before the (slow, memory-hard) password check
    count_signin_attempt(store, email, client, settings)
    result = sign_in(store, email, password, client, settings)
    if result is None:
        raise BadRequest("Invalid credentials")
    return result


def count_signin_attempt(store, email: str, client: str | None, settings: AuthSettings = DEFAULTS) -> None:
    """Record one sign-in attempt before the password is checked, committed; 429 when over a limit
    (and then not counted: the transaction rolls back)."""
    now = domain.utcnow()
    client = domain.client_key(client)
    with store.transaction() as tx:
        if client:
            attempts, _ = repository.count(tx.session, f"client:{client}", now, domain.FAILURE_WINDOW)
            domain.check_client_attempts(attempts, settings.auth_max_failures_per_client)
        key = f"email:{email}"
        attempts, blocked_until = repository.count(tx.session, key, now, domain.FAILURE_WINDOW)
        delay = domain.email_throttle(attempts, blocked_until, now, settings)
        if delay:
            repository.block(tx.session, key, now + delay)


def sign_in(store, email: str, password: str, client: str | None = None,
            settings: AuthSettings = DEFAULTS) -> dict | None:
    """The new session, or None for bad credentials. The attempt was counted already
    (:func:`count_signin_attempt`); a success forgets it."""
    with store.transaction() as tx:
        user = repository.user_by_email(tx.session, email)
        if not passwords.verify_password(user.password_hash if user else None, password.strip()):
            return None
        domain.check_may_sign_in(user)
        repository.forget(tx.session, f"email:{email}")
        if domain.client_key(client):
            repository.uncount(tx.session, f"client:{domain.client_key(client)}")
        return _issue(tx.session, user, settings=settings)


# -- sessions --------------------------------------------------------------------------

def refresh(store, presented, settings: AuthSettings = DEFAULTS) -> dict:
    """Rotate a refresh token. Presenting a rotated one again within REFRESH_GRACE_SECONDS (two
    tabs refreshing together) gives the same successor; later, it is reuse: the whole family is
    revoked (committed), then 401."""
    with store.transaction() as tx:
        result = _rotate(tx.session, domain.check_presented(presented), settings)
    if result is None:  # reuse detected; the family is revoked now
        raise NotAuthorized("Refresh token reuse detected; please sign in again")
    return result


def _rotate(session, presented: str, settings: AuthSettings) -> dict | None:
    token = repository.token(session, domain.hash_token(presented), lock=True)
    now = domain.utcnow()
    token = domain.check_live(token, now)
    user = domain.check_may_refresh(repository.user(session, token.user_id))
    successor = domain.successor_of(presented)
    if token.rotated_at is not None:
        if domain.within_grace(token, now, settings):
            current = repository.token(session, domain.hash_token(successor))
            if current is not None and current.revoked_at is None:
                return domain.session_of(user, token.family_id, successor, settings)
        repository.revoke_family(session, token.family_id, domain.utcnow())
        return None
    token.rotated_at = now
    return _issue(session, user, family_id=token.family_id, refresh=successor, settings=settings)


def sign_out(store, presented: str | None) -> None:
    """Revoke the session of ``presented``: its refresh tokens now, its access tokens at the
    gateways within seconds (a revocation they pull)."""
    if not presented or not isinstance(presented, str):
        return
    with store.transaction() as tx:
        token = repository.token(tx.session, domain.hash_token(presented))
        if token is not None:
            repository.revoke_family(tx.session, token.family_id, domain.utcnow())
            repository.add(tx.session, domain.signed_out(token, domain.utcnow()))


def revocations_since(store, after=0, limit: int = 1000, settings: AuthSettings = DEFAULTS) -> dict:
    """Revocations newer than id ``after`` that can still matter (an access token lives
    ACCESS_TOKEN_TTL + leeway): what a gateway pulls to refuse revoked access tokens."""
    horizon = domain.revocation_horizon(domain.utcnow(), settings)
    after = domain.revocation_cursor(after)
    with store.read() as session:
        rows = repository.revocations(session, after, horizon, limit)
        last = rows[-1].id if rows else max(after, repository.last_revocation_id(session))
        return {"revocations": [row.to_dict() for row in rows], "last": last}


# -- users (operators) -----------------------------------------------------------------

def get_user(store, user_id) -> dict:
    with store.read() as session:
        user = repository.user(session, user_id) if is_valid_id(str(user_id)) else None
        if user is None:
            raise NotFound("User not found")
        return user.to_dict()


def _user_by_email(session, email):
    user = repository.user_by_email(session, domain.normal_email(email))
    if user is None:
        raise NotFound("User not found")
    return user


def find_user(store, email) -> dict:
    """Operators: a user by email, with whether (and since when) they are revoked."""
    with store.read() as session:
        return domain.user_view(_user_by_email(session, email))


def revoke_user(store, email) -> dict:
    """Operators: sign a user out everywhere and refuse refresh and sign-in from now on."""
    with store.transaction() as tx:
        user = _user_by_email(tx.session, email)
        user.revoked_at = domain.utcnow()
        revoked_tokens = repository.revoke_tokens_of(tx.session, user.id, domain.utcnow())
        repository.add(tx.session, domain.revoked(user))
        return {"user": user.to_dict(), "revokedTokens": revoked_tokens}


def restore_user(store, email) -> dict:
    """Operators: undo revoke_user (the user signs in again)."""
    with store.transaction() as tx:
        user = _user_by_email(tx.session, email)
        user.revoked_at = None
        return user.to_dict()
