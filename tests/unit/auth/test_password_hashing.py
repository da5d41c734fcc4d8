"""Argon2 takes ARGON2_MEMORY_KIB per hash: only ARGON2_MAX_CONCURRENT hashes run at once."""
import threading
import time

import eventlet
import pytest
from eventlet.semaphore import Semaphore

from services.auth import passwords
from services.common.errors import ServiceUnavailable


def test_hashes_run_at_most_max_concurrent_at_once_and_the_rest_wait(monkeypatch):
    monkeypatch.setattr(passwords, "_slots", Semaphore(2))
    running, peak, lock = [0], [0], threading.Lock()

    def slow_hash(password):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return "hash:" + password

    monkeypatch.setattr(passwords, "_hasher", type("SlowHasher", (), {"hash": staticmethod(slow_hash)})())
    pool = eventlet.GreenPool(10)
    results = list(pool.imap(passwords.hash_password, [f"pw-{n}" for n in range(10)]))
    assert results == [f"hash:pw-{n}" for n in range(10)]
    assert peak[0] == 2


def test_a_caller_that_waits_too_long_gets_a_503_not_a_queue_without_end(monkeypatch):
    slots = Semaphore(1)
    monkeypatch.setattr(passwords, "_slots", slots)
    monkeypatch.setattr(passwords, "QUEUE_SECONDS", 0.05)
    slots.acquire()  # one hash holds the only slot
    try:
        with pytest.raises(ServiceUnavailable):
            passwords.hash_password("long-enough")
    finally:
        slots.release()



def test_auth_s_settings_set_the_cost_of_a_hash_and_how_many_run_at_once():
    from services.auth.service import AuthService
    from services.auth.settings import AuthSettings

    assert isinstance(AuthService.hashing, passwords.PasswordHashing)  # the service configures it at start
    defaults = AuthSettings()
    assert (defaults.argon2_memory_kib, defaults.argon2_time_cost, defaults.argon2_parallelism,
            defaults.argon2_max_concurrent) == (46 * 1024, 1, 1, 1)  # what the chart's memory limit is sized for
    try:
        passwords.configure(AuthSettings(argon2_memory_kib=2048, argon2_time_cost=2, argon2_parallelism=1,
                                         argon2_max_concurrent=3))
        assert "$m=2048,t=2,p=1$" in passwords.hash_password("long-enough")
        assert passwords._slots.counter == 3
    finally:
        passwords.configure(AuthSettings.load())
