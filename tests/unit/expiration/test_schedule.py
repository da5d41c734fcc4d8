"""The expiry schedule: which holding queue each pending expiry hops to."""

from services.common import events
from services.common.delays import LADDER_MS
from services.expiration.domain import remaining_ms
from services.expiration.schedule import DUE_QUEUE, ExpirySchedule


class FakeDelivery:
    def __init__(self):
        self.sent = []

    def later(self, target_queue, payload, delay_ms, headers=None):
        assert delay_ms in LADDER_MS
        self.sent.append((target_queue, payload, delay_ms))
        return ("hop", delay_ms)


def schedule():
    s = ExpirySchedule()
    s.delivery = FakeDelivery()
    s.exchange = None  # expiration:complete is only planned here, never published
    return s


def hops(s, order_id, expires_at) -> bool:
    """Plan the expiry; True if it takes a hop (False: due, its expiration:complete planned)."""
    message, due = s.plan(order_id, expires_at)
    if due:
        assert message.routing_key == events.EXPIRATION_COMPLETE
    return not due


def at(seconds_from_now):
    return events.isoformat(events.utcnow() + __import__("datetime").timedelta(seconds=seconds_from_now))


def test_remaining_ms_reads_iso_utc():
    assert abs(remaining_ms("2030-01-01T00:00:00.000Z", now=1893456000 - 2.5) - 2500) < 1e-6


def test_a_long_wait_takes_the_longest_step_that_does_not_overshoot():
    s = schedule()
    assert hops(s, "o1", at(15 * 60 + 0.5))
    (queue, payload, delay), = s.delivery.sent
    assert queue == DUE_QUEUE and payload["orderId"] == "o1" and delay == 15 * 60 * 1000


def test_the_last_stretch_rounds_up_to_a_100ms_step():
    s = schedule()
    assert hops(s, "o1", at(0.45))
    assert s.delivery.sent[0][2] in (400, 500)


def test_a_due_expiry_is_not_rescheduled():
    s = schedule()
    assert not hops(s, "o1", at(-1))
    assert not hops(s, "o1", events.isoformat(events.utcnow()))
    assert s.delivery.sent == []


def test_windows_of_different_lengths_use_different_queues():
    s = schedule()
    hops(s, "short", at(1.05))
    hops(s, "long", at(5.05))
    assert [d for _, _, d in s.delivery.sent] == [1100, 5100]  # one hop each, never early
