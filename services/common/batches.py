"""Handling messages in batches: one worker, one transaction, one commit for many messages.

Under a rush (an on-sale's expiries all coming due) one worker, one transaction, one commit
and one publisher-confirm round trip *per message* is what limits a service. Here:

* :class:`BatchEventHandler` (``@batch_event_handler(source, event)``) and :class:`BatchConsumer`
  (``@batch_consume(queue)``) take up to ``batch_size`` messages (the broker sends
  ``prefetch`` ahead, default two batches), waiting ``linger`` seconds (a few ms) for a batch
  to fill, and hand them to one worker as a list of :class:`Delivery`. All are acked once
  that worker returned, i.e. once their effect is committed and what they publish is
  confirmed by the broker. If the batch fails, each message is handled again on its own
  (a batch of one), so one bad or early message costs only itself: its failure goes through
  the entrypoint's usual path (:class:`~services.common.handlers.EventHandler`: retried with
  back-off or parked; :class:`BatchConsumer`: ``requeue_on_error``).
* :func:`handles_batch` is :func:`~services.common.handlers.handles` for such a handler:
  the method stays ``method(self, tx, event)``, called for each event of the batch in one
  transaction (one commit, the outbox rows published together). It records event ids
  (``dedup=True``) only for handlers whose effect is not idempotent by itself.
* what a batch publishes goes out through :class:`~services.common.confirms.ConfirmedPublisher`:
  all messages, then one wait for the broker's confirms (not one round trip per message).

A batch that failed may have had part of its effect outside the database (messages
published before the error); handling each message again repeats those. Only use batches
where a repeat is harmless, as it is for every event consumer (RabbitMQ redelivers anyway).
"""
from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import eventlet
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import QueueConsumer

from . import events, logs
from .handlers import EventHandler, first_time, parse_event
from .queues import Consumer

log = logging.getLogger(__name__)

#: at most this many messages per batch, and how long (seconds) a batch may wait to fill. Under a backlog
#: every batch is full, and its fixed costs (a worker, a transaction, a commit, one wait for confirms) are
#: shared by more messages: 6,000 expiries over 18 s (bench.expiry) reached order:cancelled with p99 6.2 s
#: at 100 against 11.3 s at 50, on a machine that could not keep up with either.
DEFAULT_BATCH_SIZE = 100
DEFAULT_LINGER = 0.005


# -- consuming in batches ------------------------------------------------------------------

@dataclass
class Delivery:
    """One message of a batch: its payload and the correlation id it came with."""

    payload: object
    correlation_id: str | None = None
    message: object = field(default=None, repr=False)

    @contextmanager
    def scope(self, event_type: str | None = None, **ids):
        """The log context of this message (its correlation id and the ids it names, plus ``ids``), as a
        worker of its own would have: what is emitted or logged inside carries them."""
        with logs.scope(correlation_id=self.correlation_id or logs.new_correlation_id(),
                        **{**logs.ids_from_payload(self.payload, event_type), **ids}):
            yield


class BatchQueueConsumer(QueueConsumer):
    """nameko's queue consumer (its own connection) for batching entrypoints: prefetches what they
    ask for, and hands each message to its entrypoint at once (no green thread per message)."""

    @property
    def prefetch_count(self):
        return max((getattr(p, "prefetch", 0) for p in self._providers), default=0) or self.container.max_workers

    def handle_message(self, provider, body, message):
        provider.handle_message(body, message)


class Batching:
    """Mixin for a nameko Consumer entrypoint: messages are handled in batches (see the module's doc)."""

    queue_consumer = BatchQueueConsumer()

    def __init__(self, *args, batch_size: int = DEFAULT_BATCH_SIZE, linger: float = DEFAULT_LINGER,
                 prefetch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_size, self.linger = max(1, int(batch_size)), float(linger)
        self.prefetch = prefetch or 2 * self.batch_size

    def setup(self):
        super().setup()
        self._waiting: list[Delivery] = []
        self._flush_scheduled = False

    def handle_message(self, body, message):
        """Called in the consumer's thread: only collect (never block it)."""
        cid = (message.headers or {}).get(logs.CORRELATION_HEADER)
        self._waiting.append(Delivery(body, cid, message))
        if len(self._waiting) >= self.batch_size:
            self._take_and_spawn()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.container.spawn_managed_thread(self._flush_after_linger, identifier=f"{self}.linger")

    def _flush_after_linger(self):
        eventlet.sleep(self.linger)  # the consumer keeps collecting meanwhile
        self._flush_scheduled = False
        if self._waiting:
            self._take_and_spawn()

    def _take_and_spawn(self):
        batch, self._waiting = self._waiting[:self.batch_size], self._waiting[self.batch_size:]
        # spawning may wait for a free worker: never in the consumer's thread
        self.container.spawn_managed_thread(partial(self._spawn, batch), identifier=f"{self}.batch")

    def _spawn(self, batch: list[Delivery]):
        try:
            self.container.spawn_worker(self, (batch,), {}, context_data={},
                                        handle_result=partial(self._batch_done, batch))
        except ContainerBeingKilled:
            for delivery in batch:
                self.queue_consumer.requeue_message(delivery.message)

    def _batch_done(self, batch, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            for delivery in batch:
                self.handle_message_processed(delivery.message, result, None)
        elif len(batch) == 1:
            self.handle_message_processed(batch[0].message, result, exc_info)
        else:
            log.info("a batch of %d messages of %s failed (%s: %s); handling each on its own", len(batch),
                     self.queue.name, type(exc_info[1]).__name__, exc_info[1])
            for delivery in batch:
                self.container.spawn_managed_thread(partial(self._spawn, [delivery]), identifier=f"{self}.one")
        return result, exc_info


class BatchEventHandler(Batching, EventHandler):
    """:class:`~services.common.handlers.EventHandler` (retries, parking, the same queue name) taking
    batches: ``@batch_event_handler("orders", "order:created", consumer="on_order_created", batch_size=50)``
    calls the method
    with a list of :class:`Delivery`."""


class BatchConsumer(Batching, Consumer):
    """``@batch_consume(queue, requeue_on_error=True)``: nameko's ``@consume`` taking batches."""


batch_event_handler = BatchEventHandler.decorator
batch_consume = BatchConsumer.decorator


def parse_all(event_name: str, batch: list[Delivery]) -> list[events.Event]:
    """Validate every payload of a batch; an invalid one fails the batch (then it alone is parked)."""
    return [parse_event(event_name, delivery.payload) for delivery in batch]


def handles_batch(source_event: str, *, consumer: str, dedup: bool = False, **kwargs):
    """``@handles_batch(events.EXPIRATION_COMPLETE, consumer="on_expiration_complete")``: like
    ``@handles``, in batches, one transaction each.

    ``method(self, tx, event)`` is called for every event of the batch, in the log context of
    its own message. ``dedup=True`` records each event id with the effect (the
    ``processed_events`` table) and skips a redelivery: only needed where applying an event
    twice would do something twice. Without it, the effect itself must be idempotent (checks a
    status or a version, or inserts what is missing).
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, batch):
            parsed = parse_all(source_event, batch)
            results, seen = [], set()
            with self.store.transaction() as tx:
                for delivery, event in zip(batch, parsed):
                    if event.eventId in seen:  # one event twice in a batch (a relay's duplicate): once is enough
                        continue
                    seen.add(event.eventId)
                    with delivery.scope(source_event):
                        if dedup and not first_time(tx, source_event, event, consumer):
                            continue
                        results.append(method(self, tx, event))
            return results

        return batch_event_handler(events.SOURCE[source_event], source_event, consumer=consumer, **kwargs)(wrapper)

    return decorate
