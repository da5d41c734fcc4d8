"""Event handlers that retry with back-off, park only what cannot succeed, and apply an event once.

``event_handler`` is nameko's, except that an error does not lose the message
(nameko acks it) nor loop it hot (``requeue_on_error``): the message goes back
to the handler's own queue through a delay queue, waiting 1 s, 2 s, 4 s ... up to
``HANDLER_RETRY_MAX_DELAY_SECONDS`` (60) between tries, for as long as
``HANDLER_RETRY_FOR_SECONDS`` (6 hours) since its first failure: a database or a
broker that is away for an hour loses nothing and needs no operator. Only then,
or at once for an *invalid* message (its payload does not validate: retrying
cannot help), is it parked in ``<queue>.parked`` and logged, with the error in
its headers. Operators list, replay and drop parked messages by RPC
(:mod:`services.common.parked`).

``applies_once`` parses the payload and opens a transaction that records the
event id with the effect, so a redelivered event has no second effect.

Every handler has a *consumer name*, given explicitly (``consumer="on_order_cancelled"``)
and never derived from the method: it names the handler's queue
(``evt-<source>-<event>--<service>.<consumer>``) and is the key under which
``applies_once`` records the events it applied. Renaming the method changes
neither; changing the name would orphan the queue's messages on a deployed
broker and make the service apply again every event redelivered to it, so a
name, once deployed, stays. Names are unique within a service and match
:data:`CONSUMER_NAME` (what the broker permissions of
:mod:`services.common.broker_users` allow).
"""
from __future__ import annotations

import functools
import logging
import re
import time
import uuid

from nameko.events import SERVICE_POOL
from nameko.events import EventHandler as NamekoEventHandler
from pydantic import ValidationError

from . import events, metrics
from .delays import LADDER_MS, DelayedDelivery
from .errors import BadRequest
from .queues import TypedQueue
from .settings import settings_of

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-ticketing-attempt"
FIRST_FAILURE_HEADER = "x-ticketing-first-failure"
#: failures that count against ``max_attempts`` (not "not yet": an early event, a lease held elsewhere)
FAILURES_HEADER = "x-ticketing-failures"
PARKED_ID_HEADER = "x-ticketing-parked-id"
ERROR_HEADER = "x-ticketing-error"
PARKED_AT_HEADER = "x-ticketing-parked-at"
#: what a consumer name may be (lower case and underscores: part of the queue's name)
CONSUMER_NAME = re.compile(r"[a-z][a-z_]*")


class NotYetApplicable(Exception):
    """The event arrived early (e.g. version n+2 before n+1): try again later."""

    #: expected, not a failure: the handler logs the retry (INFO); nameko's worker line with a
    #: traceback is dropped (``services.common.logs.ExpectedErrors``)
    logged_as_retry = True


class InvalidMessage(Exception):
    """The message itself is wrong (poison): retrying cannot help, so it is parked at once."""


#: errors that say the message is wrong, not that something is away
INVALID = (InvalidMessage, ValidationError, BadRequest)


def retry_delay_ms(attempt: int, max_delay_ms: float) -> int:
    """1 s, 2 s, 4 s ... doubling per attempt, capped, as a step of the delay ladder."""
    wanted = min(1000 * 2 ** max(0, attempt - 1), max(100, max_delay_ms))
    return min((step for step in LADDER_MS if step >= wanted), default=LADDER_MS[-1])


class EventHandler(TypedQueue, NamekoEventHandler):
    """``consumer`` is the handler's stable name (see the module's doc), which names its queue.
    ``max_attempts`` (None: no bound) parks a message after that many failed tries even before
    ``retry_for`` seconds have passed (e.g. emails: ``MAIL_MAX_ATTEMPTS``); a "not yet"
    (:class:`NotYetApplicable`) is not a failure and does not count."""

    def __init__(self, source_service, event_type, *, consumer: str, max_attempts=None, **kwargs):
        if not isinstance(consumer, str) or not CONSUMER_NAME.fullmatch(consumer):
            raise ValueError(f"consumer name {consumer!r} must match {CONSUMER_NAME.pattern}")
        if kwargs.get("handler_type", SERVICE_POOL) != SERVICE_POOL:
            raise ValueError("only service-pool handlers (one queue a service) are supported")
        kwargs.setdefault("expected_exceptions", (NotYetApplicable,))
        super().__init__(source_service, event_type, **kwargs)
        self.consumer = consumer
        self.max_attempts = max_attempts

    def queue_name(self, service_name: str) -> str:
        """``evt-<source>-<event>--<service>.<consumer>``: nameko's name, with the consumer name
        where nameko puts the method's."""
        return f"evt-{self.source_service}-{self.event_type}--{service_name}.{self.consumer}"

    def setup(self):
        super().setup()
        # nameko named the queue after the method; it is declared only when the consumer starts.
        self.queue = self.queue.__class__(**dict(self.queue.as_dict(),
                                                 name=self.queue_name(self.container.service_name)))
        settings = settings_of(self.container)
        self.delays = DelayedDelivery(settings.amqp_uri, settings.queue_type, settings.quorum_dead_lettering)
        self.retry_for = settings.handler_retry_for_seconds
        self.retry_max_delay = settings.handler_retry_max_delay_seconds

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is not None:
            try:
                self._retry_or_park(message, exc_info)
            except Exception:
                # Could not reschedule (broker trouble): put it back rather than lose it.
                log.exception("could not reschedule a failed event; requeueing it")
                self.queue_consumer.requeue_message(message)
                return
        self.queue_consumer.ack_message(message)

    def _retry_or_park(self, message, exc_info, now: float | None = None):
        now = time.time() if now is None else now
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        first_failure = float(headers.get(FIRST_FAILURE_HEADER, now))
        error = exc_info[1]
        failures = int(headers.get(FAILURES_HEADER, 0)) + (0 if isinstance(error, NotYetApplicable) else 1)
        where = f"{self.queue.name} attempt {attempt}"
        reason = None
        if isinstance(error, INVALID):
            reason = "it is invalid"
        elif now - first_failure >= self.retry_for:
            reason = f"it failed for {now - first_failure:.0f} s"
        elif self.max_attempts is not None and failures >= self.max_attempts:
            reason = f"{failures} failed tries"
        if reason is not None:
            headers.update({PARKED_ID_HEADER: uuid.uuid4().hex, ERROR_HEADER: f"{type(error).__name__}: {error}"[:500],
                            PARKED_AT_HEADER: events.isoformat(events.utcnow())})
            log.error("parking event of %s after %s (%s: %s); payload %s", where, reason, type(error).__name__,
                      error, message.payload)
            self.delays.park(self.queue.name, message.payload, headers)
            metrics.EVENTS_PARKED.labels(self.queue.name).inc()
            return
        headers[ATTEMPT_HEADER] = attempt + 1
        headers[FIRST_FAILURE_HEADER] = first_failure
        headers[FAILURES_HEADER] = failures
        delay = retry_delay_ms(attempt, self.retry_max_delay * 1000)
        log_at = logging.INFO if isinstance(error, NotYetApplicable) else logging.WARNING
        log.log(log_at, "event failed (%s: %r); retrying in %d ms", where, error, delay)
        self.delays.send_later(self.queue.name, message.payload, delay, headers)
        metrics.EVENT_RETRIES.labels(self.queue.name).inc()


event_handler = EventHandler.decorator


def parse_event(event_name: str, payload) -> events.Event:
    """The payload as its contract's model; one that does not match is an :class:`InvalidMessage`
    (parked, never retried)."""
    try:
        return events.parse(event_name, payload)
    except (ValidationError, TypeError, ValueError) as invalid:
        raise InvalidMessage(f"{event_name} does not match its contract: {invalid}") from None


def first_time(tx, event_name: str, event: events.Event, consumer: str) -> bool:
    """Record ``event`` as applied by ``consumer`` in ``tx``; False (and a log line) for a redelivery."""
    if tx.first_delivery(event, consumer=consumer):
        return True
    log.info("dropping duplicate %s %s", event_name, event.eventId)
    return False


def applies_once(event_name: str, consumer: str):
    """Wrap ``method(self, tx, event)``: parse the payload, skip redeliveries, commit with the effect.

    The service must have a ``store`` (:class:`services.common.store.Store`) with a
    processed-events table; ``consumer`` is the key the applied events are recorded under.
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, payload):
            event = parse_event(event_name, payload)
            with self.store.transaction() as tx:
                if not first_time(tx, event_name, event, consumer):
                    return None
                return method(self, tx, event)

        wrapper.consumer = consumer  # what the service's processed-events record keys it by
        return wrapper

    return decorate


def handles(source_event: str, *, consumer: str, **kwargs):
    """``@handles(events.TICKET_UPDATED, consumer="on_ticket_updated")``: retrying handler +
    applies_once for one event, both under the one consumer name."""

    def decorate(method):
        wrapped = applies_once(source_event, consumer)(method)
        return event_handler(events.SOURCE[source_event], source_event, consumer=consumer, **kwargs)(wrapped)

    return decorate
