"""psycopg 3 waiting on eventlet's hub, cheaply.

psycopg waits for its socket in C unless told otherwise, which blocks every
green thread of a nameko service (four concurrent 1 s queries took 4 s). ``PSYCOPG_WAIT_FUNC=wait_select``
fixes that through eventlet's green ``select``, but each wait then costs about
a millisecond of bookkeeping: 2.2 ms per query + commit here, against 0.3 ms
blocking. Waiting with ``eventlet.hubs.trampoline`` on the one file descriptor
is as cheap as blocking (0.36 ms) and still green (four ``pg_sleep(1)`` in
parallel take 1.0 s). :func:`install` puts it in place of ``psycopg.waiting.wait``,
which psycopg looks up on every wait.
"""
from __future__ import annotations

from eventlet import patcher
from eventlet.green import select as green_select
from eventlet.hubs import trampoline
from psycopg import waiting
from psycopg.waiting import Ready, Wait


def wait_green(gen, fileno: int, interval: float | None = 0.0, timeout: float | None = None):
    """psycopg's ``wait`` protocol: drive ``gen``, parking the green thread until the socket is ready."""
    try:
        state = next(gen)
        while True:
            if state == Wait.R:
                trampoline(fileno, read=True, timeout=timeout, timeout_exc=_timed_out)
                ready = Ready.R
            elif state == Wait.W:
                trampoline(fileno, write=True, timeout=timeout, timeout_exc=_timed_out)
                ready = Ready.W
            else:  # both (a large query being sent): rare, so eventlet's green select is fine
                readable, writable, _ = green_select.select([fileno], [fileno], [], timeout)
                if not (readable or writable):
                    raise _timed_out()
                ready = (Ready.R if readable else 0) | (Ready.W if writable else 0)
            state = gen.send(ready)
    except StopIteration as done:
        return done.value


def _timed_out(*_args):
    from psycopg import errors

    return errors._WaitTimeout("wait timeout expired")


def install() -> None:
    """Use :func:`wait_green` if eventlet has patched this process (a no-op otherwise)."""
    if patcher.is_monkey_patched("socket"):
        waiting.wait = wait_green
