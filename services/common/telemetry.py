"""Per worker: the log context (correlation id and ids in play) and the RPC / event metrics.

:class:`Telemetry` is a nameko DependencyProvider every service has (through
:class:`~services.common.health.HealthMixin`). Before a worker runs it takes
the correlation id from the worker's context data (the ``nameko.correlation_id``
header of the RPC or event that started it) or makes one (timers, messages
from outside), puts it back in the context data so that every RPC and event
the worker makes carries it on, and binds it with the ids it finds in the
arguments to the log context of the worker's green thread.
"""
from __future__ import annotations

import inspect
import time

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer
from nameko.rpc import Rpc
from nameko.web.handlers import HttpRequestHandler

from . import logs, metrics

#: argument names of entrypoints that are ids worth a field of their own in the log
ID_ARGUMENTS = ("user_id", "order_id", "ticket_id", "payment_id")


class Telemetry(DependencyProvider):
    def setup(self):
        self._started: dict = {}
        self._signatures: dict = {}

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        if isinstance(entrypoint, HttpRequestHandler):  # probes and /metrics
            return
        cid = worker_ctx.data.get(logs.CORRELATION_KEY) or logs.new_correlation_id()
        worker_ctx.data[logs.CORRELATION_KEY] = cid
        token = logs.start(correlation_id=cid, **self._ids(worker_ctx))
        self._started[worker_ctx] = (token, time.perf_counter())

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.get(worker_ctx)
        if started is None:
            return
        entrypoint = worker_ctx.entrypoint
        exc = exc_info[1] if exc_info else None
        if isinstance(entrypoint, Rpc):
            outcome = "ok" if exc is None else "refused" if logs.is_expected(exc) else "error"
            metrics.RPC_SECONDS.labels(worker_ctx.service_name, entrypoint.method_name, outcome).observe(
                time.perf_counter() - started[1])
        elif isinstance(entrypoint, EventHandler):
            metrics.EVENTS_CONSUMED.labels(worker_ctx.service_name, entrypoint.event_type,
                                           "ok" if exc is None else "failed").inc()

    def worker_teardown(self, worker_ctx):
        started = self._started.pop(worker_ctx, None)
        if started is not None:
            logs.reset(started[0])

    def _ids(self, worker_ctx) -> dict:
        entrypoint = worker_ctx.entrypoint
        args, kwargs = worker_ctx.args, worker_ctx.kwargs
        if isinstance(entrypoint, EventHandler):
            return logs.ids_from_payload(args[0] if args else None, entrypoint.event_type)
        if isinstance(entrypoint, Consumer):
            return logs.ids_from_payload(args[0] if args else None)
        if isinstance(entrypoint, Rpc):
            try:
                bound = self._signature(worker_ctx).bind_partial(*args, **kwargs).arguments
            except TypeError:  # nameko answers the caller with the error; nothing to bind
                return {}
            return {name: bound[name] for name in ID_ARGUMENTS
                    if isinstance(bound.get(name), (str, int)) and bound.get(name) != ""}
        return {}

    def _signature(self, worker_ctx) -> inspect.Signature:
        name = worker_ctx.entrypoint.method_name
        if name not in self._signatures:
            method = getattr(type(worker_ctx.service), name)
            signature = inspect.signature(method)
            params = list(signature.parameters.values())[1:]  # without self
            self._signatures[name] = signature.replace(parameters=params)
        return self._signatures[name]
