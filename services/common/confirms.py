"""Publishing many messages with one wait for the broker's publisher confirms.

nameko's publisher waits for the broker's confirm of each message before the next one: a
network round trip (and a pooled-connection checkout) per message. :class:`ConfirmedPublisher`
publishes a whole list on one channel in confirm mode, then waits once until the broker has
confirmed (or refused) every one of them. It returns only when all are confirmed, so a
caller that acknowledges its input after ``publish`` returned loses nothing.
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field

import amqp
from amqp.exceptions import MessageNacked
from kombu import Connection
from kombu.utils import json

log = logging.getLogger(__name__)

#: how long (seconds) to wait for the broker to confirm a batch
CONFIRM_TIMEOUT = 30.0


@dataclass
class Outgoing:
    """A message to publish: what, where, and which exchange or queue to declare first."""

    payload: object
    exchange: object
    routing_key: str
    headers: dict = field(default_factory=dict)
    declare: list = field(default_factory=list)


class _ConfirmingLink:
    """One connection with one channel in confirm mode; its acks and nacks are counted here."""

    def __init__(self, amqp_uri: str):
        self.connection = Connection(amqp_uri, connect_timeout=5)
        # kombu tries one address per attempt: try each address of a cluster once
        self.connection.ensure_connection(max_retries=len(self.connection.alt) or 1, interval_start=0,
                                          interval_step=0.2)
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._acked)
        self.channel.events["basic_nack"].add(self._nacked)
        self.declared: set[tuple[str, str]] = set()
        self.published = 0
        self.unconfirmed: set[int] = set()
        self.refused: set[int] = set()

    def _settle(self, delivery_tag: int, multiple: bool) -> set[int]:
        done = {t for t in self.unconfirmed if t <= delivery_tag} if multiple else {delivery_tag}
        self.unconfirmed -= done
        return done

    def _declare(self, entity) -> None:
        """Declare an exchange or a queue (with its exchange and binding) once per connection."""
        key = (type(entity).__name__, entity.name)
        if key not in self.declared and not getattr(entity, "no_declare", False):
            entity(self.channel).declare()
        self.declared.add(key)

    def _acked(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple)

    def _nacked(self, delivery_tag, multiple):
        self.refused |= self._settle(delivery_tag, multiple)

    def publish_all(self, messages: list[Outgoing], timeout: float) -> None:
        self.refused.clear()
        for message in messages:
            for entity in message.declare:
                self._declare(entity)
            # straight to the channel: kombu's Producer costs as much again per message
            body = amqp.Message(json.dumps(message.payload).encode(), content_type="application/json",
                                content_encoding="utf-8", application_headers=message.headers, delivery_mode=2)
            self.channel.basic_publish(body, exchange=getattr(message.exchange, "name", message.exchange) or "",
                                       routing_key=message.routing_key)
            self.published += 1  # the broker numbers a confirm-mode channel's messages 1, 2, 3 ...
            self.unconfirmed.add(self.published)
        deadline = time.monotonic() + timeout
        while self.unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"the broker did not confirm {len(self.unconfirmed)} message(s) in {timeout} s")
            self.connection.drain_events(timeout=left)
        if self.refused:
            raise MessageNacked(f"the broker refused {len(self.refused)} of {len(messages)} message(s)")

    def close(self):
        try:
            self.connection.close()
        except Exception:
            pass


class ConfirmedPublisher:
    """``publish(messages)``: all published, then one wait until the broker confirmed every one.

    Raises if any is not confirmed (then some may have been published: a repeat is a duplicate,
    which consumers drop). Connections are kept for reuse, one per concurrent caller; a
    connection that failed is dropped and the batch tried once more on a new one, which tries
    the next address of a cluster's list first."""

    #: idle connections kept for the next batches (one per worker that may publish at once)
    KEEP = 16

    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self._idle: list[_ConfirmingLink] = []
        self._addresses = [a for a in amqp_uri.split(";") if a.strip()] or [amqp_uri]
        self._first = 0  # which address of a cluster's list a new connection tries first

    def _next_uri(self) -> str:
        """The address list starting where the last failure did not happen: a node that is shutting down
        still accepts connections for a while and then closes them, so a new connection after a failure
        tries the next node first instead of that one again."""
        n = len(self._addresses)
        return ";".join(self._addresses[(self._first + i) % n] for i in range(n))

    def publish(self, messages: list[Outgoing], timeout: float = CONFIRM_TIMEOUT) -> None:
        if not messages:
            return
        for attempt in (1, 2):
            link = self._idle.pop() if self._idle else None
            try:
                link = link or _ConfirmingLink(self._next_uri())
                link.publish_all(messages, timeout)
            except BaseException as exc:
                if link is not None:
                    link.close()
                if not isinstance(exc, MessageNacked):
                    self._first = (self._first + 1) % len(self._addresses)
                if attempt == 2 or isinstance(exc, MessageNacked) or not isinstance(exc, Exception):
                    raise
                # a kept connection the broker or the network dropped meanwhile
                log.info("publishing a batch failed (%s: %s); trying once more on a new connection",
                         type(exc).__name__, exc)
                continue
            if len(self._idle) < self.KEEP:
                self._idle.append(link)
            else:
                link.close()
            return

    def close(self):
        while self._idle:
            self._idle.pop().close()
