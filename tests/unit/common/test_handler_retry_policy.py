"""What a failing event handler does with its message: retry with capped back-off for hours, park only
what cannot succeed (invalid messages), with the error and an id an operator can replay it by."""
import types

import pytest
from pydantic import BaseModel

from services.common import handlers
from services.common.handlers import EventHandler, InvalidMessage, NotYetApplicable, retry_delay_ms


class Delays:
    def __init__(self):
        self.later, self.parked = [], []

    def send_later(self, queue, payload, delay, headers):
        self.later.append((delay, headers))

    def park(self, queue, payload, headers):
        self.parked.append(headers)


def handler(retry_for=6 * 3600, max_delay=60, max_attempts=None):
    h = EventHandler.__new__(EventHandler)
    h.queue = types.SimpleNamespace(name="evt-tickets-ticket:updated--orders.on_ticket_updated")
    h.delays, h.retry_for, h.retry_max_delay, h.max_attempts = Delays(), retry_for, max_delay, max_attempts
    return h


def fail(h, error, headers=None, now=1000.0):
    message = types.SimpleNamespace(headers=headers or {}, payload={"eventId": "e1"})
    h._retry_or_park(message, (type(error), error, None), now=now)


def test_back_off_doubles_up_to_the_cap_on_steps_of_the_delay_ladder():
    assert [retry_delay_ms(n, 60_000) for n in (1, 2, 3, 4, 7, 8, 30)] == [1000, 2000, 4000, 8000, 60000, 60000,
                                                                           60000]
    assert retry_delay_ms(10, 5_000) == 5000


def test_an_infrastructure_failure_is_retried_for_hours_not_parked_after_minutes():
    h = handler()
    headers, now = {}, 1000.0
    for attempt in range(1, 400):  # 399 tries at <= 60 s apart: more than 6 hours of an outage
        fail(h, ConnectionError("database unreachable"), headers, now=now)
        if h.delays.parked:
            break
        delay, headers = h.delays.later[-1]
        now += delay / 1000
    assert h.delays.parked and now - 1000.0 >= 6 * 3600
    assert h.delays.parked[0][handlers.ERROR_HEADER].startswith("ConnectionError")
    assert h.delays.parked[0][handlers.PARKED_ID_HEADER]


def test_an_early_event_keeps_waiting_too():
    h = handler()
    fail(h, NotYetApplicable("v5 before v4"), {handlers.ATTEMPT_HEADER: 50, handlers.FIRST_FAILURE_HEADER: 0.0},
         now=3600.0)
    assert not h.delays.parked and h.delays.later[0][0] == 60000


class Shape(BaseModel):
    id: str


def _validation_error():
    try:
        Shape.model_validate({})
    except Exception as exc:  # pydantic's ValidationError
        return exc


@pytest.mark.parametrize("make_error", [lambda: InvalidMessage("no id"), _validation_error],
                         ids=["InvalidMessage", "ValidationError"])
def test_an_invalid_message_is_parked_at_once(make_error):
    h = handler()
    fail(h, make_error())
    assert len(h.delays.parked) == 1 and h.delays.later == []


def test_an_explicit_bound_of_failed_tries_still_parks_but_not_yet_does_not_count():
    h = handler(max_attempts=3)
    headers = {}
    for _ in range(10):  # e.g. another worker holds the email's lease: not a failure of the send
        fail(h, NotYetApplicable("being sent elsewhere"), headers)
        headers = h.delays.later[-1][1]
    assert not h.delays.parked
    for _ in range(3):
        fail(h, RuntimeError("mail provider refuses"), headers)
        if h.delays.later:
            headers = h.delays.later[-1][1]
    assert len(h.delays.parked) == 1 and h.delays.parked[0][handlers.ATTEMPT_HEADER] == 13


def test_a_payload_that_breaks_the_contract_is_invalid():
    from services.common import events

    @handlers.applies_once(events.TICKET_UPDATED, consumer="on_ticket_updated")
    def on_ticket_updated(self, tx, event):
        raise AssertionError("not reached")

    with pytest.raises(InvalidMessage):
        on_ticket_updated(types.SimpleNamespace(), {"id": "x"})
