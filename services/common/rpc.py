"""RPC between our processes: deadlines, timeouts, and infrastructure errors as "unavailable".

Every RPC request carries a *deadline* (``deadline`` in nameko's context data, so the
header ``nameko.deadline``: epoch seconds) equal to its caller's patience: the gateway
sets it to now + ``RPC_TIMEOUT``, and a service calling another passes its own on
(shortened to ``INTERNAL_RPC_TIMEOUT`` if that comes first).

* :func:`rpc` is nameko's ``@rpc`` with three differences:

  - a request whose deadline has passed is dropped unanswered (its caller gave up,
    e.g. it waited in the queue while the service was down): nothing runs late;
  - a worker that failed on infrastructure (database unreachable, a killed
    connection, the broker away, another service not answering) answers
    :class:`ServiceUnavailable` (503 at the gateway), never an unknown error;
  - a reply that cannot be published (the broker went away meanwhile) is logged
    instead of killing the service: nameko 2 kills the whole container then. The
    unacknowledged request is redelivered once the broker is back, and its
    deadline or request id keep it from having a second effect.

* :class:`ServiceRpc` is nameko's ``RpcProxy`` whose calls time out.

Every service's RPCs use these (a test checks it): two kinds of RPC entrypoint on
one service would consume its queue twice.
"""
from __future__ import annotations

import logging
import socket
import time

import eventlet
from nameko.constants import HEADER_PREFIX
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy
from nameko.rpc import Rpc as NamekoRpc
from nameko.amqp.publish import Publisher
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER, LOGIN_METHOD_CONFIG_KEY,
                              SERIALIZER_CONFIG_KEY)
from nameko.rpc import Responder
from nameko.rpc import RpcConsumer as NamekoRpcConsumer
from nameko.rpc import get_rpc_exchange

from .errors import ServiceUnavailable
from .queues import ReplyListener, TypedQueue
from .settings import settings_of

log = logging.getLogger(__name__)

#: context-data key of a request's deadline (epoch seconds)
DEADLINE = "deadline"
DEADLINE_HEADER = f"{HEADER_PREFIX}.{DEADLINE}"


def deadline_of(headers: dict | None) -> float | None:
    raw = (headers or {}).get(DEADLINE_HEADER)
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def is_infrastructure_error(exc: BaseException) -> bool:
    """Did this fail because something we depend on is away, rather than because of the request?"""
    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, ServiceUnavailable):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # OperationalError (server gone, connection killed, admin shutdown), InterfaceError
        # (connection closed), or any DBAPI error that invalidated the connection
        return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or exc.connection_invalidated
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    try:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return isinstance(exc, (KombuOperationalError, RpcTimeout, UnknownService, ConnectionError, socket.timeout,
                            TimeoutError, eventlet.Timeout))


class _Replier(Responder):
    """nameko's reply sender, without publisher confirms unless asked: a reply goes to its
    caller's own exclusive, non-durable queue, so a confirm from the broker proves nothing the
    caller would not see anyway (it gets the reply, or times out and may retry: requests carry
    their request id or deadline). Waiting for the confirm was the largest cost of a read (a
    broker round trip per reply: ~39% of the tickets service's busy time under load)."""

    def __init__(self, *args, confirms: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.confirms = confirms

    def publisher_cls(self, amqp_uri, **kwargs):  # nameko's hook: the publisher of one reply
        return Publisher(amqp_uri, use_confirms=self.confirms, **kwargs)


class RpcConsumer(TypedQueue, NamekoRpcConsumer):
    """Consumes ``rpc-<service>``, a queue of the configured type (``services.common.queues``)."""

    #: publisher confirms on replies (see :class:`_Replier`)
    reply_confirms = False

    def _send_reply(self, message, result, exc_info):
        # nameko's RpcConsumer.handle_result, with our reply sender
        config = self.container.config
        replier = _Replier(config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                           config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
                           ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
                           confirms=self.reply_confirms)
        result, exc_info = replier.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def handle_result(self, message, result, exc_info):
        try:
            return self._send_reply(message, result, exc_info)
        except Exception as exc:  # the broker went away while the worker ran
            log.warning("could not send the reply of an RPC (%r); the broker redelivers the request once it "
                        "is back, unless its deadline has passed", exc)
            return result, exc_info


class Rpc(NamekoRpc):
    rpc_consumer = RpcConsumer()

    def handle_message(self, body, message):
        deadline = deadline_of(message.headers)
        if deadline is not None and deadline < time.time():
            log.info("dropping RPC %s: its caller gave up %.1f s ago", message.delivery_info.get("routing_key"),
                     time.time() - deadline)
            self.rpc_consumer.queue_consumer.ack_message(message)
            return
        super().handle_message(body, message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None and not isinstance(exc_info[1], ServiceUnavailable) \
                and is_infrastructure_error(exc_info[1]):
            log.warning("%s failed on infrastructure (%s: %s); answering 'unavailable'", self.method_name,
                        type(exc_info[1]).__name__, str(exc_info[1]).splitlines()[0] if str(exc_info[1]) else "")
            exc_info = (ServiceUnavailable, ServiceUnavailable(), exc_info[2])
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator

_MISSING = object()


class ServiceRpc(DependencyProvider):
    """``self.orders.hold_for_payment(...)``: nameko's RpcProxy, but a call gives up after
    ``INTERNAL_RPC_TIMEOUT`` seconds (default 5) or at the caller's deadline, whichever is
    first, and raises :class:`ServiceUnavailable`; the request carries that deadline, so the
    other service drops it if it comes too late. Replies come back on a queue of the
    configured type (``services.common.queues``)."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, target_service: str, timeout: float | None = None):
        self.target_service = target_service
        self.timeout = timeout

    def setup(self):
        if self.timeout is None:
            self.timeout = settings_of(self.container).internal_rpc_timeout

    def get_dependency(self, worker_ctx):
        return TimedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener, self.timeout)


class TimedServiceProxy:
    def __init__(self, worker_ctx, target_service, reply_listener, timeout):
        self._worker_ctx, self._target = worker_ctx, target_service
        self._reply_listener, self._timeout = reply_listener, timeout

    def __getattr__(self, method_name):
        if method_name.startswith("_"):
            raise AttributeError(method_name)

        def call(*args, **kwargs):
            return self._call(method_name, args, kwargs)

        return call

    def _call(self, method_name, args, kwargs):
        now = time.time()
        data = self._worker_ctx.data
        limit = now + self._timeout
        own = data.get(DEADLINE)
        if own is not None:
            limit = min(limit, float(own))
        if limit <= now:
            raise ServiceUnavailable(f"No time left to ask {self._target}")
        original = data.get(DEADLINE, _MISSING)
        data[DEADLINE] = limit  # the request's header; the worker's own deadline is put back below
        try:
            reply = MethodProxy(self._worker_ctx, self._target, method_name, self._reply_listener) \
                .call_async(*args, **kwargs)
        finally:
            if original is _MISSING:
                data.pop(DEADLINE, None)
            else:
                data[DEADLINE] = original
        try:
            with eventlet.Timeout(max(0.0, limit - time.time())):
                return reply.result()
        except eventlet.Timeout:
            raise ServiceUnavailable(f"{self._target} did not answer {method_name} in time") from None
