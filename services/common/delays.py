"""Delayed delivery on RabbitMQ dead-letter TTL queues (no plugin, no polling).

A *holding queue* ``delay.<ms>ms`` has a per-queue ``x-message-ttl`` and the
default exchange as its dead-letter exchange. A message published to it with
routing key = the name of a *target queue* sits there for exactly that TTL,
then RabbitMQ dead-letters it to the default exchange, which routes it by the
unchanged routing key straight into the target queue. Every message in one
holding queue has the same TTL, so none waits behind another (per-message TTL
blocks at the head of a queue: a 1 s message behind a 5 s one waits 5 s).

Delays are taken from a fixed ladder of holding queues (100 ms steps up to a
minute, then whole minutes and hours); a queue is declared when first used.
:func:`next_hop` picks the hop for a deadline: within a minute, the shortest
step that reaches it (one hop, at most 100 ms late); beyond, the longest step
that does not overshoot. A consumer that gets a message before its deadline
sends it on again (see expiration), so a 15 minute delay is 2 hops and arrives
at most ~100 ms late, never early.

Queues and messages are durable, so what is waiting survives a restart of
any consumer or of RabbitMQ itself. With ``QUEUE_TYPE=quorum`` the holding and
parked queues are quorum queues, so it also survives the loss of a cluster
node (:mod:`services.common.queues`).
"""
from __future__ import annotations

import logging
import math

from kombu import Exchange, Queue
from nameko.amqp.publish import Publisher

from .confirms import Outgoing
from .queues import AT_MOST_ONCE, CLASSIC, typed

log = logging.getLogger(__name__)

SECOND = 1000
MINUTE = 60 * SECOND
FINE_STEP = 100
LADDER_MS = sorted(
    set(range(FINE_STEP, MINUTE + 1, FINE_STEP))
    | {m * MINUTE for m in range(1, 60)}
    | {h * 60 * MINUTE for h in range(1, 25)}
)
#: retries of failing event handlers wait 1 s, 2 s, 4 s ... 60 s (all ladder steps)
RETRY_BACKOFF_MS = (1000, 2000, 4000, 8000, 16000, 32000, 60000)


def next_hop(remaining_ms: float) -> int:
    """The holding-queue delay to use when ``remaining_ms`` are left until the deadline."""
    if remaining_ms <= 0:
        return 0
    if remaining_ms <= MINUTE:
        return math.ceil(remaining_ms / FINE_STEP) * FINE_STEP  # up to the next 100 ms: never early
    return max(step for step in LADDER_MS if step <= remaining_ms)


def backoff_ms(attempt: int) -> int:
    return RETRY_BACKOFF_MS[min(attempt, len(RETRY_BACKOFF_MS)) - 1]


def holding_queue(delay_ms: int) -> Queue:
    name = f"delay.{delay_ms}ms"
    exchange = Exchange(name, type="fanout", durable=True)
    return Queue(
        name,
        exchange=exchange,
        durable=True,
        queue_arguments={"x-message-ttl": delay_ms, "x-dead-letter-exchange": ""},
    )


def durable_queue(name: str) -> Queue:
    return Queue(name, exchange=Exchange("", type="direct"), routing_key=name, durable=True)


class DelayedDelivery:
    """Publishes a message to arrive in a target queue after a delay from the ladder."""

    def __init__(self, amqp_uri: str, queue_type: str = CLASSIC, dead_lettering: str = AT_MOST_ONCE):
        self.publisher = Publisher(amqp_uri)
        self.queue_type, self.dead_lettering = queue_type, dead_lettering
        self._declared: set[int] = set()

    def later(self, target_queue: str, payload, delay_ms: int, headers: dict | None = None) -> Outgoing:
        """The message :meth:`send_later` publishes, for publishing in a batch
        (:class:`~services.common.confirms.ConfirmedPublisher`)."""
        if delay_ms not in LADDER_MS:
            raise ValueError(f"{delay_ms} ms is not a step of the delay ladder")
        queue = typed(holding_queue(delay_ms), self.queue_type, self.dead_lettering)
        return Outgoing(payload, queue.exchange, target_queue, headers or {}, [queue])

    def send_later(self, target_queue: str, payload, delay_ms: int, headers: dict | None = None) -> None:
        message = self.later(target_queue, payload, delay_ms, headers)
        declare = [] if delay_ms in self._declared else message.declare
        self.publisher.publish(
            payload, exchange=message.exchange, routing_key=target_queue, headers=message.headers, declare=declare
        )
        self._declared.add(delay_ms)

    def send_now(self, target_queue: str, payload, headers: dict | None = None) -> None:
        self.publisher.publish(payload, exchange=Exchange("", type="direct"), routing_key=target_queue,
                               headers=headers or {})

    def park(self, queue_name: str, payload, headers: dict | None = None) -> None:
        """Put a message that keeps failing into ``<queue>.parked`` (a dead-letter queue)."""
        parked = typed(durable_queue(f"{queue_name}.parked"), self.queue_type)
        self.publisher.publish(payload, exchange=parked.exchange, routing_key=parked.name,
                               headers=headers or {}, declare=[parked])
