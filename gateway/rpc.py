"""A pool of nameko RPC proxies for a threaded WSGI server.

A ``ClusterRpcProxy`` is not thread-safe (30 threads sharing one got 0 of 30 answers), so each request checks
one out and returns it afterwards. A proxy that times out or loses its
connection is dropped, not reused; the pool makes a new one on demand.
"""
from __future__ import annotations

import logging
import queue
import socket
from contextlib import contextmanager

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from services.common import logs
from services.common.errors import ServiceUnavailable
from services.common.queues import StandaloneReplyListener

log = logging.getLogger(__name__)

#: AmqpConnectionError: the broker closed the connection (a cluster node stopping: CONNECTION_FORCED)
BROKEN = (RpcTimeout, UnknownService, OperationalError, ConnectionError, AmqpConnectionError, socket.error,
          socket.timeout)


class RpcPool:
    def __init__(self, nameko_config: dict, timeout: float = 5.0, max_idle: int = 32):
        self.config = nameko_config
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue(maxsize=max_idle)

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

    @contextmanager
    def client(self):
        try:
            context, proxy = self._idle.get_nowait()
        except queue.Empty:
            try:
                context, proxy = self._open()
            except BROKEN as exc:
                log.warning("cannot reach the broker: %r", exc)
                raise ServiceUnavailable() from None
        self._carry_correlation_id(context)
        try:
            yield proxy
        except BROKEN as exc:
            log.warning("RPC failed (%r); dropping the proxy", exc)
            self._discard(context)
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
