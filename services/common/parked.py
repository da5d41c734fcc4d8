"""Parked messages, for operators: list them, replay them into their queue, or drop them.

A handler parks a message in ``<queue>.parked`` when it is invalid or kept failing
for ``HANDLER_RETRY_FOR_SECONDS`` (see :mod:`services.common.handlers`). Every
service with event handlers offers the same three RPCs (:class:`ParkedMessagesMixin`)::

    n.rpc.orders.list_parked()                          # [{id, queue, error, parkedAt, attempts, payload}, ...]
    n.rpc.orders.replay_parked(ids=["<id>"])            # back into its queue, tries counted afresh
    n.rpc.orders.replay_parked(queue="<queue>")         # every parked message of one queue
    n.rpc.orders.drop_parked(ids=["<id>"])              # gone for good (logged)

``queue`` names a handler's queue (as ``list_parked`` shows it); without ``ids`` a
replay or a drop takes every parked message of the queue(s), up to ``limit``.
Messages are read with ``basic.get`` and left unacknowledged until the end, so
the ones not chosen go back to their parked queue untouched.
"""
from __future__ import annotations

import logging

from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection, Exchange, Producer, Queue
from nameko.extensions import DependencyProvider

from .delays import durable_queue
from .handlers import (ATTEMPT_HEADER, ERROR_HEADER, FAILURES_HEADER, FIRST_FAILURE_HEADER, PARKED_AT_HEADER,
                       PARKED_ID_HEADER, EventHandler)
from .rpc import rpc

log = logging.getLogger(__name__)

#: never hold more than this many messages of one parked queue unacknowledged at once
SCAN_LIMIT = 10000
PARKED_SUFFIX = ".parked"
REPLAYED_HEADER = "x-ticketing-replayed"


class ParkedMessages(DependencyProvider):
    def get_dependency(self, worker_ctx):
        queues = sorted({ext.queue.name for ext in self.container.entrypoints if isinstance(ext, EventHandler)})
        return ParkedQueues(self.container.config["AMQP_URI"], queues)


class ParkedQueues:
    def __init__(self, amqp_uri: str, handler_queues: list[str]):
        self.amqp_uri, self.handler_queues = amqp_uri, handler_queues

    def _chosen(self, queue: str | None) -> list[str]:
        if queue is None:
            return self.handler_queues
        name = queue[:-len(PARKED_SUFFIX)] if queue.endswith(PARKED_SUFFIX) else queue
        if name not in self.handler_queues:
            from .errors import NotFound

            raise NotFound(f"No handler queue {queue!r}; this service has {', '.join(self.handler_queues)}")
        return [name]

    def _visit(self, queue: str | None, choose, act, limit: int) -> list[dict]:
        """Read each parked message; ``act(channel, queue, message)`` on the chosen ones (then acked)."""
        done: list[dict] = []
        with Connection(self.amqp_uri, connect_timeout=5) as connection:
            for name in self._chosen(queue):
                channel = connection.channel()
                try:
                    parked = Queue(f"{name}{PARKED_SUFFIX}", channel=channel)
                    try:
                        parked.queue_declare(passive=True)
                    except QueueNotFound:
                        continue  # nothing was ever parked here
                    for _ in range(SCAN_LIMIT):
                        if len(done) >= limit:
                            break
                        message = parked.get(no_ack=False)
                        if message is None:
                            break
                        entry = describe(name, message)
                        if choose(entry):
                            act(channel, name, message)
                            message.ack()
                            done.append(entry)
                finally:
                    try:
                        channel.close()  # what was read and not acknowledged goes back to the parked queue
                    except Exception:
                        pass
        return done

    def list(self, queue: str | None = None, limit: int = 50) -> list[dict]:
        seen: list[dict] = []

        def note(entry):
            if len(seen) < limit:
                seen.append(entry)
            return False  # nothing is taken: every message goes back

        self._visit(queue, note, None, limit=limit)
        return seen

    def replay(self, queue: str | None = None, ids: list[str] | None = None, limit: int = 1000) -> list[dict]:
        def send_back(channel, name, message):
            headers = {k: v for k, v in (message.headers or {}).items()
                       if k not in (ATTEMPT_HEADER, FIRST_FAILURE_HEADER, FAILURES_HEADER, PARKED_ID_HEADER,
                                    ERROR_HEADER, PARKED_AT_HEADER)}
            headers[REPLAYED_HEADER] = int(headers.get(REPLAYED_HEADER, 0)) + 1
            target = durable_queue(name)
            producer = Producer(channel)
            producer.publish(message.body, exchange=Exchange("", type="direct"), routing_key=target.name,
                             headers=headers, content_type=message.content_type,
                             content_encoding=message.content_encoding, delivery_mode=2)

        replayed = self._visit(queue, _matching(ids), send_back, limit)
        for entry in replayed:
            log.warning("replayed parked message %s into %s", entry["id"], entry["queue"])
        return replayed

    def drop(self, queue: str | None = None, ids: list[str] | None = None, limit: int = 1000) -> list[dict]:
        dropped = self._visit(queue, _matching(ids), lambda *_: None, limit)
        for entry in dropped:
            log.warning("dropped parked message %s of %s: %s", entry["id"], entry["queue"], entry["payload"])
        return dropped


def _matching(ids):
    wanted = set(ids) if ids else None
    return lambda entry: wanted is None or entry["id"] in wanted


def describe(queue: str, message) -> dict:
    headers = message.headers or {}
    try:
        payload = message.payload
    except Exception:  # undecodable body: show it raw
        payload = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
    fallback = payload.get("eventId") if isinstance(payload, dict) else None
    return {"id": headers.get(PARKED_ID_HEADER) or fallback or "", "queue": queue,
            "error": headers.get(ERROR_HEADER), "parkedAt": headers.get(PARKED_AT_HEADER),
            "attempts": headers.get(ATTEMPT_HEADER, 1), "payload": payload}


class ParkedMessagesMixin:
    """Operators' RPCs over this service's parked messages (see the module's docstring)."""

    parked = ParkedMessages()

    @rpc
    def list_parked(self, queue=None, limit=50):
        """Operators: parked messages of this service's handlers (or of ``queue``), oldest first."""
        return self.parked.list(queue, int(limit))

    @rpc
    def replay_parked(self, queue=None, ids=None, limit=1000):
        """Operators: put parked messages (``ids``, or all of ``queue``/every queue) back into their queue."""
        return self.parked.replay(queue, ids, int(limit))

    @rpc
    def drop_parked(self, queue=None, ids=None, limit=1000):
        """Operators: delete parked messages for good (``ids``, or all of ``queue``/every queue)."""
        return self.parked.drop(queue, ids, int(limit))
