"""Password hashing with Argon2id (memory-hard), off the eventlet hub, a bounded number at a time.

Each hash takes ``ARGON2_MEMORY_KIB`` (64 MiB by default) while it runs, so the
number of hashes in flight, not the number of workers, sets the service's peak
memory: at most ``ARGON2_MAX_CONCURRENT`` (default 2) run at once, the others
wait up to ``ARGON2_QUEUE_SECONDS`` (default 3, under the gateway's RPC timeout)
and then get a 503 to retry. Size the container's memory limit to
``base (~160 MiB) + ARGON2_MAX_CONCURRENT x ARGON2_MEMORY_KIB``.

The hasher is the process's: :class:`PasswordHashing` (a dependency provider of the
auth service) sets it up from auth's settings when the service starts; until then
(rules tests) it has the settings' defaults.
"""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

from services.common.errors import ServiceUnavailable
from services.common.settings import settings_of

from .settings import AuthSettings

_hasher: PasswordHasher
_slots: Semaphore
QUEUE_SECONDS: float
#: verified against when the email is unknown, so timing does not reveal which emails exist
_DUMMY_HASH = None


def configure(settings: AuthSettings) -> None:
    """Hash with ``settings``' cost, at most ``ARGON2_MAX_CONCURRENT`` at once."""
    global _hasher, _slots, QUEUE_SECONDS, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                             parallelism=settings.argon2_parallelism)
    _slots = Semaphore(settings.argon2_max_concurrent)
    QUEUE_SECONDS = settings.argon2_queue_seconds
    _DUMMY_HASH = None


configure(AuthSettings())


class PasswordHashing(DependencyProvider):
    """Sets the process's hasher up from the auth service's settings when the service starts."""

    def setup(self):
        configure(settings_of(self.container, AuthSettings))


def _bounded(fn, *args):
    if not _slots.acquire(timeout=QUEUE_SECONDS):
        raise ServiceUnavailable("Too many sign-ins at once, try again shortly")
    try:
        return tpool.execute(fn, *args)
    finally:
        _slots.release()


def hash_password(password: str) -> str:
    return _bounded(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password("not-a-real-password")
        password_hash = _DUMMY_HASH
        password = password + "\x00"
    try:
        return _bounded(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
