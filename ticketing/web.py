"""Serving the gateway and the frontend: gunicorn, one process per core, bounded.

The web tier has to survive an on-sale rush: thousands of buyers at once next
to browsers holding idle keep-alive connections. So:

* **gunicorn with threaded workers** (``gthread``): every worker waits on its
  sockets with epoll, not ``select()`` (which cannot see a file descriptor past
  1024), and ``WEB_WORKERS`` processes (default: one per usable core) share
  the listening socket, so every core serves requests. The gateway's nameko
  RPC pool hands one proxy to one thread at a time, so plain threads are safe
  and the web process needs no eventlet monkey patching.
* **The file-descriptor limit is raised** to its hard limit at start, and a
  worker never accepts more connections than it has descriptors for
  (``WEB_MAX_CONNECTIONS``): past that, new connections wait in the kernel's
  backlog instead of crashing the worker with ``EMFILE``.
* **Admission control** (:class:`BoundedThreadWorker`): a worker admits at most
  ``WEB_MAX_PENDING`` requests at a time (running or waiting for one of its
  ``WEB_THREADS`` threads). A request beyond that, or one that waited longer
  than ``WEB_QUEUE_TIMEOUT`` seconds for a thread, is answered at once with
  ``503`` and ``Retry-After`` (the API's JSON error shape under ``/api``, a
  short page elsewhere), on the event loop itself when the whole request is
  there (one non-blocking send), else by a spare thread, so an overloaded
  server stays quick and honest instead of queueing without bound.
* A connection is handed to a thread only when its request has arrived: idle
  and slow connections wait in the worker's epoll loop, never in a thread.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import resource
import selectors
import socket
import threading
import time
from collections import deque
from concurrent import futures
from contextlib import ExitStack
import dataclasses
from dataclasses import dataclass
from functools import partial

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.workers import gthread

from services.common.settings import CommonSettings, at_least_one, not_negative, positive, setting

log = logging.getLogger(__name__)

BUSY_MESSAGE = "The site is busy right now; try again in a moment"
RETRY_AFTER_SECONDS = 1
# Descriptors a worker keeps for itself (broker and database connections, logs, pipes).
RESERVED_FDS = 256
# How long a closing connection waits for the client to close its end (the 503s and "Connection: close").
LINGER_SECONDS = 2.0


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft if soft != resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # a container may forbid it; serve within the soft limit
        log.warning("cannot raise the open-files limit from %s to %s: %s", soft, hard, exc)
        return soft
    return hard


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WebSettings(CommonSettings):
    """How the web process (gunicorn: the gateway, the frontend or both) serves (see
    :mod:`services.common.settings`). The defaults left None depend on the machine: :meth:`sized`."""

    host: str = setting("0.0.0.0", "the address the web process listens on")
    port: int = setting(8000, "where the web process listens (`ticketing up` sets 8080)")
    metrics_port: int = setting(9100, "where the web process serves /metrics and /errors (0: nowhere)",
                                check=not_negative)
    web_workers: int | None = setting(None, "web server processes (default: the usable cores)", check=at_least_one)
    web_threads: int = setting(16, "request threads per web worker", check=at_least_one)
    web_max_connections: int | None = setting(
        None, "connections per web worker (default: open-files limit - 256, at most 10,000)", check=at_least_one)
    web_max_pending: int | None = setting(
        None, "requests a web worker admits at once, running or waiting (default: 4 x WEB_THREADS)",
        check=at_least_one)
    web_queue_timeout: float = setting(0.5, "seconds an admitted request may wait for a thread before a 503",
                                       check=positive)
    web_keepalive: int = setting(30, "seconds an idle keep-alive connection stays open", check=not_negative)
    web_backlog: int = setting(2048, "connections waiting in the kernel's backlog", check=at_least_one)
    web_timeout: int = setting(30, "seconds before a silent worker is restarted", check=positive)
    web_graceful_timeout: int = setting(5, "seconds a stopping worker may finish its requests", check=not_negative)

    def sized(self, fd_limit: int) -> "WebSettings":
        """These settings with the machine-dependent defaults filled in (``fd_limit``: open files allowed)."""
        return dataclasses.replace(
            self,
            web_workers=self.web_workers or usable_cores(),
            web_max_connections=self.web_max_connections or max(64, min(10_000, fd_limit - RESERVED_FDS)),
            web_max_pending=self.web_max_pending or self.web_threads * 4,
        )


def busy_response(path: str, keep_alive: bool = False) -> bytes:
    """The whole 503 answer: the API's JSON error shape under /api, a short page elsewhere."""
    if path == "/api" or path.startswith("/api/"):
        body = json.dumps({"errors": [{"message": BUSY_MESSAGE}]}).encode()
        content_type = "application/json"
    else:
        body = (f"<!doctype html><title>Busy</title><h1>Busy</h1><p>{BUSY_MESSAGE}.</p>").encode()
        content_type = "text/html; charset=utf-8"
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n"
            f"Cache-Control: no-store\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n").encode()
    return head + body


#: how much of a waiting request :func:`whole_request` looks at
PEEK_BYTES = 16384


def whole_request(sock) -> tuple[int, str, bool] | None:
    """``(its length in bytes, its path, whether the client keeps the connection)`` of the HTTP/1.x
    request waiting on ``sock`` if all of it has arrived (headers and a ``Content-Length`` body, no
    chunked body), looked at without taking it off the socket; None otherwise."""
    try:
        head = sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return None
    return parse_whole_request(head)


def parse_whole_request(data: bytes) -> tuple[int, str, bool] | None:
    """:func:`whole_request` on the bytes received so far."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    request_line, *lines = data[:end].decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or name != name.strip():
            return None  # not a header line we can vouch for: a thread's parser decides
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        return None
    try:
        body = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    length = end + 4 + body
    if body < 0 or len(data) < length:
        return None
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if parts[2] == "HTTP/1.1" else "keep-alive" in connection
    return length, parts[1].split("?", 1)[0], keep_alive


class _Conn(gthread.TConn):
    """A connection that remembers when its request was queued and closes gracefully without blocking.

    gunicorn's graceful close half-closes the socket and then waits (up to 2 s)
    for the client to close too, on the worker's event loop. Here the waiting
    is handed back to the event loop's poller instead (``lingering``), so a
    client that never closes costs a descriptor for 2 s, never a thread.
    """

    worker: "BoundedThreadWorker | None" = None
    queued_at = 0.0

    def close(self, graceful=False):
        if graceful and self.worker is not None:
            self.worker.linger(self)
        else:
            super().close(graceful)


class BoundedThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker with admission control (see the module's docstring).

    Everything here runs on the worker's event loop (main thread) except
    ``handle`` and ``reject``, which run on threads; ``in_flight`` is only
    touched by the event loop.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.max_pending, self.queue_timeout = 0, 0.0
        self.spare = None  # a few threads that answer 503s the event loop cannot answer by itself
        self.lingering: deque = deque()  # (deadline, conn) of half-closed connections, oldest first

    def init_process(self):
        settings = self.app.settings  # the WebServer's, read once by the master
        self.max_pending = settings.web_max_pending
        self.queue_timeout = settings.web_queue_timeout
        self.spare = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="web-busy")
        super().init_process()

    # --- the event loop -----------------------------------------------------------------------
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors despite the cap: this is the real capacity; the rest wait in the backlog.
                self.log.warning("cannot accept a connection (%s); holding at %s connections", exc, self.nr_conns)
                self.worker_connections = max(1, self.nr_conns)
                self.set_accept_enabled(False)
                return
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Conn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.worker = self
        if self._has_data(client_sock):
            conn.data_ready = True
            self.enqueue_req(conn)
        else:  # nothing sent yet: wait in the poller, not in a thread
            conn.timeout = time.monotonic() + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(client_sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def on_pending_socket_readable(self, conn, client):
        if self._closed_by_peer(client):
            self._close_idle(conn, client, self.pending_conns)
        else:
            super().on_pending_socket_readable(conn, client)

    def on_client_socket_readable(self, conn, client):
        if self._closed_by_peer(client):
            self._close_idle(conn, client, self.keepalived_conns)
        else:
            super().on_client_socket_readable(conn, client)

    def _close_idle(self, conn, client, waiting) -> None:
        """An idle connection the client closed: closed here, on the event loop. Handed to a thread
        like a request, each took a place among the admitted ones until a thread got to it, so a
        crowd of keep-alive connections closing at once (the end of a rush) had the next real
        requests answered 503."""
        self.poller.unregister(client)
        waiting.remove(conn)
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _closed_by_peer(sock) -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # reset by the peer

    @staticmethod
    def _has_data(sock) -> bool:
        try:
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # let a thread find the error and close it

    def enqueue_req(self, conn):
        conn.queued_at = time.monotonic()
        if self.in_flight >= self.max_pending:
            self.turn_away(conn)
            return
        self.in_flight += 1
        future = self.tpool.submit(self.handle, conn)
        future.add_done_callback(lambda _f: self.method_queue.defer(self._done))
        future.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def turn_away(self, conn) -> None:
        """Over capacity: 503 right here on the event loop when it can be done without waiting, else
        by a spare thread (:meth:`reject`). Handed to threads, every one of these answers queued
        behind the others: in a rush of 2,000 buyers the 503s themselves took 2.2 s (p99).

        On the loop: a connection nothing was read from yet whose whole request has arrived
        (:func:`whole_request`, the common case in a rush) has exactly that request taken off the
        socket and gets its 503 in one non-blocking send; it stays open for its next request when
        the client asked for keep-alive, as a thread's answer would."""
        request = whole_request(conn.sock) if conn.parser is None and not self.cfg.is_ssl else None
        if request is None:
            future = self.spare.submit(self.reject, conn)
            future.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
            return
        length, path, keep_alive = request
        keep_alive = keep_alive and self.alive
        answer = busy_response(path, keep_alive)
        try:
            conn.sock.recv(length, socket.MSG_DONTWAIT)  # all there: it was peeked at
            sent = conn.sock.send(answer, socket.MSG_DONTWAIT)
        except OSError:
            sent = 0
        if sent < len(answer):  # reset, or a client that does not read: nothing more to say
            self.nr_conns -= 1
            gthread.util.close(conn.sock)
            return
        if keep_alive:  # back to waiting for its next request, as gthread's finish_request does
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        else:
            self.nr_conns -= 1
            conn.close(graceful=True)

    def _done(self):
        self.in_flight -= 1

    def linger(self, conn) -> None:
        """Half-close (the answer is complete), then wait in the poller for the client's end, 2 s at most."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, ValueError, KeyError):
            gthread.util.close(conn.sock)
            return
        self.lingering.append((time.monotonic() + LINGER_SECONDS, conn))

    def _drain(self, conn, sock) -> None:
        try:
            if sock.recv(65536):
                return  # the rest of a request we did not read; keep draining until the end or the deadline
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._forget(conn)

    def _forget(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        gthread.util.close(conn.sock)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and (self.lingering[0][0] <= now or self.lingering[0][1].sock.fileno() < 0):
            self._forget(self.lingering.popleft()[1])

    # --- threads ------------------------------------------------------------------------------
    def handle(self, conn):
        if time.monotonic() - conn.queued_at > self.queue_timeout:
            return self.reject(conn)
        return super().handle(conn)

    def reject(self, conn) -> bool:
        """Answer 503 with Retry-After without running the app; True keeps the connection alive."""
        path, keep_alive = "/", False
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(0.5)  # the request has arrived; a client that stalls mid-request gets no more
            conn.init()
            request = next(conn.parser)
            path = getattr(request, "path", "/") or "/"
            keep_alive = (self.alive and not request.should_close()
                          and conn.parser.finish_body(deadline=time.monotonic() + 0.5))
        except Exception:  # a broken request still gets the answer, if the socket takes it
            keep_alive = False
        try:
            conn.sock.sendall(busy_response(path, keep_alive))
        except OSError:
            return False
        return keep_alive


def warm_rpc_pool(app, proxies: int) -> int:
    """Open ``proxies`` RPC proxies of the app's pool (``app.rpc``) now, not on the first requests.

    Each proxy is a broker connection and a reply queue (tens of ms); opened
    lazily, they made every new worker's first requests slow. Returns how many
    were opened; a broker that cannot be reached leaves the rest to requests.
    """
    pool = getattr(app, "rpc", None)
    if pool is None or not hasattr(pool, "client"):
        return 0
    opened = 0
    with ExitStack() as stack:
        for _ in range(proxies):
            try:
                stack.enter_context(pool.client())
            except Exception as exc:  # the broker is not there yet: requests will open them
                log.info("RPC pool warmed with %s of %s proxies: %s", opened, proxies, exc)
                break
            opened += 1
    return opened


def _post_worker_init(worker) -> None:
    threading.Thread(target=warm_rpc_pool, args=(worker.wsgi, worker.cfg.threads),
                     name="warm-rpc-pool", daemon=True).start()


class ProcessLogger(glogging.Logger):
    """gunicorn's own messages go through the process's logging setup (JSON lines with the
    component's name, ``services.common.logs``) instead of gunicorn's plain-text handlers."""

    def setup(self, cfg):
        self.cfg = cfg
        self._access_log_enabled = False  # the apps log one access line per request themselves
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.error_log.propagate = True
        self.access_log.propagate = True


def _child_exit(_server, worker) -> None:
    from services.common import metrics

    metrics.worker_exited(worker.pid)


class WebServer(BaseApplication):
    """gunicorn configured by :class:`WebSettings`, serving one WSGI app."""

    def __init__(self, component: str, settings: WebSettings, load_app=None):
        """``load_app()`` builds the WSGI app in each worker (default: the component's, see ticketing.cli)."""
        self.component, self.settings, self.load_app = component, settings, load_app
        super().__init__()

    def load_config(self):
        s = self.settings
        options = {
            "bind": [f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"],
            "worker_class": f"{__name__}.BoundedThreadWorker",
            "workers": s.web_workers,
            "threads": s.web_threads,
            "worker_connections": s.web_max_connections,
            "keepalive": s.web_keepalive,
            "backlog": s.web_backlog,
            "timeout": s.web_timeout,
            "graceful_timeout": s.web_graceful_timeout,
            "proc_name": f"ticketing-{self.component}",
            "errorlog": "-",
            "logger_class": f"{__name__}.ProcessLogger",
            "loglevel": s.log_level.lower(),
            "accesslog": None,
            # Each worker builds its own app, hence its own broker connections: never shared across fork.
            "preload_app": False,
            # gunicorn's runtime control socket is one path per user: two servers on a host would fight over it.
            "control_socket_disable": True,
            "post_worker_init": _post_worker_init,
            "child_exit": _child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        if self.load_app is not None:
            return self.load_app()
        from .cli import web_app

        return web_app(self.component)


def serve(component: str, load_app=None) -> None:
    """Run the web server in the foreground until SIGTERM/SIGINT (gunicorn's arbiter owns the signals)."""
    fd_limit = raise_fd_limit()
    settings = WebSettings.load().sized(fd_limit)
    log.info("serving %s on http://%s:%s with %s workers x %s threads, at most %s requests admitted per worker "
             "(open files: %s)", component, settings.host, settings.port, settings.web_workers, settings.web_threads,
             settings.web_max_pending, fd_limit)
    WebServer(component, settings, load_app).run()
