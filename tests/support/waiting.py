"""Polling for something that happens asynchronously (an event consumed, a row written)."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Return ``predicate()``'s first truthy value; fail the test after ``timeout`` seconds.

    ``time.sleep`` is green in the suite (the root conftest monkey-patches), so
    nameko containers in the same process keep running while this waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met in {timeout}s")
