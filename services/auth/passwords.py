"""Password hashing with Argon2id (memory-hard), off the eventlet hub, a bounded number at a time.

Each hash takes ``ARGON2_MEMORY_KIB`` (64 MiB by default) while it runs, so the
number of hashes in flight, not the number of workers, sets the service's peak
memory: at most ``ARGON2_MAX_CONCURRENT`` (default 2) run at once, the others
wait up to ``ARGON2_QUEUE_SECONDS`` (default 3, under the gateway's RPC timeout)
and then get a 503 to retry. Size the container's memory limit to
``base (~160 MiB) + ARGON2_MAX_CONCURRENT x ARGON2_MEMORY_KIB``.
"""
from __future__ import annotations

import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from eventlet.semaphore import Semaphore

from services.common.errors import ServiceUnavailable

# RFC 9106's second recommended profile by default; tests may lower the cost by environment.
MEMORY_KIB = int(os.environ.get("ARGON2_MEMORY_KIB", str(64 * 1024)))
MAX_CONCURRENT = max(1, int(os.environ.get("ARGON2_MAX_CONCURRENT", "2")))
QUEUE_SECONDS = float(os.environ.get("ARGON2_QUEUE_SECONDS", "3"))

_hasher = PasswordHasher(
    time_cost=int(os.environ.get("ARGON2_TIME_COST", "3")),
    memory_cost=MEMORY_KIB,
    parallelism=int(os.environ.get("ARGON2_PARALLELISM", "4")),
)
_slots = Semaphore(MAX_CONCURRENT)
#: verified against when the email is unknown, so timing does not reveal which emails exist
_DUMMY_HASH = None


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
