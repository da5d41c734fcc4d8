"""Password hashing with Argon2id (memory-hard), off the eventlet hub."""
from __future__ import annotations

import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool

# RFC 9106's second recommended profile by default; tests may lower the cost by environment.
_hasher = PasswordHasher(
    time_cost=int(os.environ.get("ARGON2_TIME_COST", "3")),
    memory_cost=int(os.environ.get("ARGON2_MEMORY_KIB", str(64 * 1024))),
    parallelism=int(os.environ.get("ARGON2_PARALLELISM", "4")),
)
#: verified against when the email is unknown, so timing does not reveal which emails exist
_DUMMY_HASH = None


def hash_password(password: str) -> str:
    return tpool.execute(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password("not-a-real-password")
        password_hash = _DUMMY_HASH
        password = password + "\x00"
    try:
        return tpool.execute(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
