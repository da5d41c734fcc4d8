"""Which kind of RabbitMQ queue every durable queue of the project is: classic or quorum.

``QUEUE_TYPE=classic`` (the default) or ``QUEUE_TYPE=quorum``, a field of every
component's settings (:mod:`services.common.settings`). It applies to
every durable queue we declare:

* nameko's own: the RPC queue ``rpc-<service>`` (``services.common.rpc.rpc``) and the event
  queues ``evt-<source>-<event>--<service>.<consumer>`` (the event handlers of
  :mod:`services.common.handlers`), and ``@consume`` queues (:data:`consume`);
* ours: the delay holding queues ``delay.<ms>ms``, ``expiration.due`` and the
  ``<queue>.parked`` dead-letter queues (:mod:`services.common.delays`).

RPC reply queues (``rpc.reply-<client>-<uuid>``, one per client process or
pooled proxy, expiring 5 minutes after their last use) follow the setting too,
but never as durable classic queues (nameko's default): a durable classic queue
whose node is down cannot be declared again anywhere, so a client that failed
over to a live node could not consume at all. With ``classic`` they are
transient (gone with their node; the client declares it again where it
reconnected, and a reply in flight is lost: the caller times out). With
``quorum`` they are quorum queues, so a reply in flight survives the node loss
and reaches the caller once it has reconnected: a service waiting on another
(payments on orders) is not left waiting for a reply that was dropped.
Services get them through ``services.common.rpc.ServiceRpc``, standalone clients (the gateway)
through :class:`StandaloneReplyListener`.

A quorum queue is replicated on the cluster's nodes (up to five) and stays
available while a majority of them is up; a classic queue lives on the node
that declared it and is unavailable while that node is down.

The holding queues dead-letter (TTL run out -> ``expiration.due`` or a
handler's queue). ``QUORUM_DEAD_LETTERING`` says how a quorum holding queue
does it:

* ``at-most-once`` (the default): the queue's leader republishes the message
  itself, without confirms. Were the target unavailable at that moment (it
  is a quorum queue too: only if a majority of nodes is down) the message
  would be lost. So is a message the leader dead-letters while its node is
  being stopped (RabbitMQ 3.10.8: the node's ``rabbit`` application stops
  before its Raft servers, and the leader crashes in the dead-letter copy
  after the message has left the queue). An expiry lost either way is
  cancelled by the orders safety net ``ORDERS_EXPIRY_GRACE_SECONDS`` late;
  a lost retry of a failed event is left to its owner's safety nets.
* ``at-least-once`` (``x-dead-letter-strategy``, which RabbitMQ only accepts
  with ``x-overflow: reject-publish``; feature flag ``stream_queue``): a
  message leaves the holding queue only once its target has confirmed it.
  On RabbitMQ 3.10.8 the cluster test (a node stopped under load) lost 88 of
  155 pending expiries with it, also after the node was back: the messages
  were in no queue's ready or unacknowledged count, which is what a
  dead-letter worker that failed to re-register with its queue's new leader
  leaves behind. RabbitMQ made that worker resilient in later releases; use
  ``at-least-once`` only on such a release (and check with ``make cluster-test``).
RabbitMQ refuses to re-declare an existing queue with other arguments
(PRECONDITION_FAILED), so switching an existing broker from one type to the
other needs empty queues deleted first, or a fresh vhost.
"""
from __future__ import annotations

import uuid

from kombu import Queue
from nameko.messaging import Consumer as NamekoConsumer
from nameko.rpc import RPC_REPLY_QUEUE_TEMPLATE, RPC_REPLY_QUEUE_TTL, get_rpc_exchange
from nameko.rpc import ReplyListener as NamekoReplyListener
from nameko.standalone.rpc import PollingQueueConsumer, SingleThreadedReplyListener

from . import broker  # noqa: F401  (nameko's connection errors then mask every address's password)
from .settings import AT_LEAST_ONCE, AT_MOST_ONCE, CLASSIC, QUORUM, settings_of



def arguments(kind: str, dead_letters: str | None = None) -> dict:
    """The ``x-`` arguments that make a durable queue of ``kind`` (``dead_letters``: its strategy, if it has one)."""
    if kind == CLASSIC:
        return {}
    args = {"x-queue-type": QUORUM}
    if dead_letters == AT_LEAST_ONCE:
        args.update({"x-dead-letter-strategy": AT_LEAST_ONCE, "x-overflow": "reject-publish"})
    return args


def typed(queue: Queue, kind: str, dead_letters: str = AT_MOST_ONCE) -> Queue:
    """``queue`` as a queue of ``kind``; transient, exclusive or auto-deleted queues are left classic.

    ``dead_letters``: the strategy of a quorum queue that dead-letters (the holding queues)."""
    if kind == CLASSIC or not queue.durable or queue.exclusive or queue.auto_delete:
        return queue
    current = dict(queue.queue_arguments or {})
    strategy = dead_letters if "x-dead-letter-exchange" in current else None
    return queue.__class__(**dict(queue.as_dict(), queue_arguments={**current, **arguments(kind, strategy)}))


class TypedQueue:
    """Mixin for a nameko extension with a ``queue``: declare it as the configured type."""

    def setup(self):
        super().setup()
        # The queue is only declared when the consumer connects (after setup), so replacing it here is enough.
        self.queue = typed(self.queue, settings_of(self.container).queue_type)


class Consumer(TypedQueue, NamekoConsumer):
    pass


def reply_queue(name: str, exchange, routing_key: str, kind: str) -> Queue:
    """An RPC reply queue of ``kind``: quorum, or a transient classic queue (see the module's doc)."""
    return Queue(name, exchange=exchange, routing_key=routing_key, durable=kind == QUORUM,
                 queue_arguments={"x-expires": RPC_REPLY_QUEUE_TTL, **arguments(kind)})


class TypedReplies:
    """Mixin for nameko's reply listeners: nameko's ``setup`` with a reply queue of the configured type.

    Replaced whole rather than patched afterwards: the standalone listener's consumer declares
    the queue the moment it is registered."""

    def setup(self):
        reply_queue_uuid = uuid.uuid4()
        self.routing_key = str(reply_queue_uuid)
        self.queue = reply_queue(RPC_REPLY_QUEUE_TEMPLATE.format(self.container.service_name, reply_queue_uuid),
                                 get_rpc_exchange(self.container.config), self.routing_key,
                                 settings_of(self.container).queue_type)
        self.queue_consumer.register_provider(self)


class ReplyListener(TypedReplies, NamekoReplyListener):
    pass


class FailoverPollingQueueConsumer(PollingQueueConsumer):
    """The standalone proxy's consumer, connecting to any one of several broker addresses.

    kombu's lazy connect (``connection.channel()``) tries a single address; with
    ``a;b;c`` the first one down would fail the client. Try each in turn first."""

    def _setup_consumer(self):
        self.connection.ensure_connection(max_retries=len(self.connection.alt) or 1,
                                          interval_start=0, interval_step=0.2)
        super()._setup_consumer()


class StandaloneReplyListener(TypedReplies, SingleThreadedReplyListener):
    """For ``ClusterRpcProxy(config, reply_listener_cls=StandaloneReplyListener)``: a reply queue of
    the configured type, and a consumer that fails over between several broker addresses."""

    def __init__(self, timeout=None):
        super().__init__(timeout=timeout)
        self.queue_consumer = FailoverPollingQueueConsumer(timeout=timeout)


#: ``@consume(queue)``: nameko's, with ``queue`` of the configured type
consume = Consumer.decorator
