"""Event handlers that retry with back-off and park what keeps failing, and apply an event once.

``event_handler`` is nameko's, except that an error does not lose the message
(nameko acks it) nor loop it hot (``requeue_on_error``): the message goes back
to the handler's own queue through a delay queue (1 s, 2 s, 4 s ...), and after
``max_attempts`` it is parked in ``<queue>.parked`` and logged. ``applies_once``
parses the payload and opens a transaction that records the event id with the
effect, so a redelivered event has no second effect.
"""
from __future__ import annotations

import functools
import logging

from nameko.events import EventHandler as NamekoEventHandler

from . import events
from .delays import DelayedDelivery, backoff_ms
from .queues import TypedQueue, configured, dead_lettering

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-ticketing-attempt"
DEFAULT_MAX_ATTEMPTS = 8


class NotYetApplicable(Exception):
    """The event arrived early (e.g. version n+2 before n+1): try again later."""


class EventHandler(TypedQueue, NamekoEventHandler):
    def __init__(self, source_service, event_type, max_attempts=DEFAULT_MAX_ATTEMPTS, **kwargs):
        kwargs.setdefault("expected_exceptions", (NotYetApplicable,))
        super().__init__(source_service, event_type, **kwargs)
        self.max_attempts = max_attempts

    def setup(self):
        super().setup()
        self.delays = DelayedDelivery(self.container.config["AMQP_URI"], configured(self.container.config),
                                      dead_lettering(self.container.config))

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

    def _retry_or_park(self, message, exc_info):
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        where = f"{self.queue.name} attempt {attempt}/{self.max_attempts}"
        if attempt >= self.max_attempts:
            log.error("parking event after %s: %r (payload %s)", where, exc_info[1], message.payload)
            self.delays.park(self.queue.name, message.payload, headers)
            return
        headers[ATTEMPT_HEADER] = attempt + 1
        delay = backoff_ms(attempt)
        log.warning("event failed (%s: %r); retrying in %d ms", where, exc_info[1], delay)
        self.delays.send_later(self.queue.name, message.payload, delay, headers)


event_handler = EventHandler.decorator


def applies_once(method):
    """Wrap ``method(self, tx, event)``: parse the payload, skip redeliveries, commit with the effect.

    The service must have a ``store`` (:class:`services.common.store.Store`).
    The event name comes from the handler's decorator, so stack it *under*
    ``@event_handler``.
    """

    @functools.wraps(method)
    def wrapper(self, payload):
        event_name = wrapper.event_name
        event = events.parse(event_name, payload)
        with self.store.transaction() as tx:
            if not tx.first_delivery(event, consumer=method.__name__):
                log.info("dropping duplicate %s %s", event_name, event.eventId)
                return None
            return method(self, tx, event)

    wrapper.event_name = None
    return wrapper


def handles(source_event: str, **kwargs):
    """``@handles(events.TICKET_UPDATED)``: retrying handler + applies_once for one event."""

    def decorate(method):
        wrapped = applies_once(method)
        wrapped.event_name = source_event
        return event_handler(events.SOURCE[source_event], source_event, **kwargs)(wrapped)

    return decorate
