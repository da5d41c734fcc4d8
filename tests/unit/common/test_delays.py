import pytest

from services.common.delays import LADDER_MS, RETRY_BACKOFF_MS, backoff_ms, holding_queue, next_hop


def hops(remaining_ms):
    """Follow the hops a message takes to its deadline; returns (hops, lateness in ms)."""
    count = 0
    while remaining_ms > 0:
        step = next_hop(remaining_ms)
        remaining_ms -= step
        count += 1
    return count, -remaining_ms


@pytest.mark.parametrize("delay_ms", [0.5, 1, 99, 100, 250, 999, 1000, 1001, 2999, 5000, 45_300, 60_000, 900_000,
                                      3_600_000 + 1, 2 * 86_400_000 + 123])
def test_never_early_at_most_100ms_late_and_few_hops(delay_ms):
    count, late = hops(delay_ms)
    assert 0 <= late < 100
    assert count <= 2 + delay_ms // 86_400_000 + (delay_ms > 3_600_000)
    if delay_ms <= 60_000:
        assert count == 1


def test_retry_backoff_uses_ladder_steps():
    assert all(step in LADDER_MS for step in RETRY_BACKOFF_MS)
    assert [backoff_ms(n) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert backoff_ms(99) == RETRY_BACKOFF_MS[-1]


def test_holding_queue_dead_letters_to_the_default_exchange_by_routing_key():
    queue = holding_queue(2000)
    assert queue.queue_arguments == {"x-message-ttl": 2000, "x-dead-letter-exchange": ""}
    assert queue.durable and queue.exchange.type == "fanout"
