"""Host name lookups of a green (eventlet) process, on eventlet's thread pool.

eventlet's own resolver (``greendns``) imports dnspython, which costs every process
that imports eventlet about 30 MB of RSS (measured: RSS after ``import eventlet``
48 MB with it, 17 MB without), a third of a service's memory. ``ticketing.cli``
therefore sets ``EVENTLET_NO_GREENDNS=yes`` before anything imports eventlet. On its own
that would make a lookup call the C resolver on the hub and freeze the whole process
while a DNS server is slow; :func:`install` (after ``eventlet.monkey_patch()``) runs
the lookups on eventlet's thread pool instead, so a slow lookup holds up only the green
thread that asked for it, as with greendns. The answers are the operating system's
(``/etc/hosts``, then DNS, as ``nsswitch.conf`` says), as in any process without eventlet.
"""
from __future__ import annotations

import functools

from eventlet import patcher, tpool

#: the lookups eventlet's green socket module would take from greendns
LOOKUPS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "getnameinfo")

_blocking = patcher.original("socket")


def _in_thread(name: str):
    lookup = getattr(_blocking, name)

    @functools.wraps(lookup)
    def green_lookup(*args, **kwargs):
        return tpool.execute(lookup, *args, **kwargs)

    green_lookup.runs_in_thread_pool = True
    return green_lookup


def install() -> None:
    """Replace the lookups of ``socket`` and ``eventlet.green.socket`` (their ``create_connection``
    looks them up there) with thread-pool ones. Call after ``eventlet.monkey_patch()``."""
    import socket

    from eventlet.green import socket as green_socket

    for name in LOOKUPS:
        if getattr(getattr(socket, name), "runs_in_thread_pool", False):
            continue
        lookup = _in_thread(name)
        setattr(socket, name, lookup)
        setattr(green_socket, name, lookup)
