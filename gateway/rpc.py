"""A pool of nameko RPC proxies for a threaded WSGI server, with a deadline per request.

A ``ClusterRpcProxy`` is not thread-safe (30 threads sharing one got 0 of 30
answers), so each request checks one out and returns it afterwards. A proxy
that times out or loses its connection is dropped, not reused; the pool makes
a new one on demand.

Each checkout has a deadline, ``timeout`` (``RPC_TIMEOUT``) seconds away: every
request it sends carries it (the service drops a request that arrives after it),
and the client answers :class:`ServiceUnavailable` when it passes, whatever the
broker does meanwhile. A broker that refuses connections or has vanished would
otherwise keep a call in kombu's connection retries for 2-20 s, so opening a
proxy and each call run on a helper thread that the request waits for at most
until the deadline (a proxy left behind that way is discarded once its call ends).
"""
from __future__ import annotations

import logging
import queue
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from services.common import logs
from services.common.errors import ServiceUnavailable
from services.common.queues import StandaloneReplyListener
from services.common.rpc import DEADLINE

log = logging.getLogger(__name__)

#: AmqpConnectionError: the broker closed the connection (a cluster node stopping: CONNECTION_FORCED)
BROKEN = (RpcTimeout, UnknownService, OperationalError, ConnectionError, AmqpConnectionError, socket.error,
          socket.timeout)


class _OutOfTime(RpcTimeout):
    """The request's deadline passed before the broker or the service answered."""


class RpcPool:
    def __init__(self, nameko_config: dict, timeout: float = 5.0, max_idle: int = 32, max_calls: int = 64):
        self.config = nameko_config
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue(maxsize=max_idle)
        self._calls = ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="rpc")

    def _open(self):
        # nameko keeps this dict by reference and sends its keys as headers of every call, so
        # setting the request's correlation id in it before each use carries it to the service.
        # The reply queue is of QUEUE_TYPE, and fails over between several broker addresses.
        context_data: dict = {}
        context = ClusterRpcProxy(self.config, timeout=self.timeout, context_data=context_data,
                                  reply_listener_cls=StandaloneReplyListener)
        context.context_data = context_data
        return context, context.start()

    @staticmethod
    def _carry_correlation_id(context) -> None:
        cid = logs.correlation_id()
        if cid:
            context.context_data[logs.CORRELATION_KEY] = cid
        else:
            context.context_data.pop(logs.CORRELATION_KEY, None)

    def _within(self, deadline: float, fn, *args):
        """``fn(*args)`` on a helper thread; raises :class:`_OutOfTime` at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime()
        future = self._calls.submit(fn, *args)
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            raise _OutOfTime() from None

    @contextmanager
    def client(self):
        deadline = time.monotonic() + self.timeout
        try:
            context, proxy = self._idle.get_nowait()
        except queue.Empty:
            try:
                context, proxy = self._within(deadline, self._open)
            except BROKEN as exc:
                log.warning("cannot reach the broker: %r", exc)
                raise ServiceUnavailable() from None
        self._carry_correlation_id(context)
        context.context_data[DEADLINE] = time.time() + (deadline - time.monotonic())
        try:
            yield _Timed(self, proxy, deadline)
        except BROKEN as exc:
            log.warning("RPC failed (%r); dropping the proxy", exc)
            self._discard_later(context)
            raise ServiceUnavailable() from None
        except BaseException:
            self._release(context, proxy)
            raise
        else:
            self._release(context, proxy)

    def _release(self, context, proxy) -> None:
        try:
            self._idle.put_nowait((context, proxy))
        except queue.Full:
            self._discard(context)

    def _discard_later(self, context) -> None:
        # a call may still be running on a helper thread: stop the proxy after it, off this thread
        self._calls.submit(self._discard, context)

    @staticmethod
    def _discard(context) -> None:
        try:
            context.stop()
        except Exception:  # already broken; nothing more to clean up
            pass

    def close(self) -> None:
        while True:
            try:
                context, _proxy = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(context)


class _Timed:
    """``rpc.tickets.get_ticket(...)`` on a checked-out proxy, bounded by the checkout's deadline."""

    def __init__(self, pool: RpcPool, proxy, deadline: float):
        self._pool, self._proxy, self._deadline = pool, proxy, deadline

    def __getattr__(self, service: str):
        return _TimedService(self, service)

    def __getitem__(self, service: str):
        return _TimedService(self, service)


class _TimedService:
    def __init__(self, timed: _Timed, service: str):
        self._timed, self._service = timed, service

    def __getattr__(self, method: str):
        timed = self._timed

        def call(*args, **kwargs):
            target = getattr(timed._proxy[self._service], method)
            return timed._pool._within(timed._deadline, lambda: target(*args, **kwargs))

        return call
