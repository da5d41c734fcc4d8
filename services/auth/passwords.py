"""Password hashing with Argon2id (memory-hard), off the eventlet hub, a bounded number at a time.

Each hash takes ``ARGON2_MEMORY_KIB`` while it runs, so the number of hashes in
flight, not the number of workers, sets the service's peak memory: at most
``ARGON2_MAX_CONCURRENT`` run at once, the others wait up to ``ARGON2_QUEUE_SECONDS``
(default 3, under the gateway's RPC timeout) and then get a 503 to retry. Size the
container's memory limit to ``base (~95 MiB) + ARGON2_MAX_CONCURRENT x ARGON2_MEMORY_KIB``.

The defaults are OWASP's first recommended Argon2id configuration, its minimum:
46 MiB (``ARGON2_MEMORY_KIB=47104``), 1 pass (``ARGON2_TIME_COST``), 1 lane
(``ARGON2_PARALLELISM``), one hash at a time (``ARGON2_MAX_CONCURRENT=1``), so that
the auth process stays within 150 MB: about 95 MB of its own plus 46 MiB. The
trade-off against the former defaults (RFC 9106's second profile, 64 MiB x 3 passes
x 4 lanes, two at a time), measured on one loaded 2-core machine: a hash took
0.8-1.0 s instead of 2.1-2.8 s, so one at a time signs in at least as many people
per second as two did, and hashing peaks at 46 MiB instead of 128 MiB (the service
at ~140 MB instead of ~240 MB); an attacker's cost per guess (memory x passes) is
about 4 times lower, at OWASP's floor, not below it. Hashes made with other
settings keep verifying (the parameters are in the hash); verifying one of the
former 64 MiB hashes takes 64 MiB while it runs. To raise the cost without memory:
another pass (``ARGON2_TIME_COST=2``) doubles the time, not the memory. Keep
``ARGON2_MEMORY_KIB`` above 32 MiB: glibc gives smaller blocks from the heap of
the thread that hashed and keeps them there after the hash, up to one block per
thread of eventlet's pool (20), instead of returning them to the system.

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
