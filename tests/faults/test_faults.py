"""Purchases while processes are killed, the broker goes away and database connections are terminated.

Every service runs as two processes (``ticketing run``), plus two gateways, on
a fresh vhost and fresh PostgreSQL databases, charging the fake Stripe. A
workload of buyers and sellers runs through the gateways while faults are
injected; then the system is left to settle and every invariant is checked
and printed with its counts.

The default suite runs the short version (one round of faults, ~2-3 min);
``make faults`` runs the full one (``FAULTS=full``: three rounds, both
processes of a service at once, a longer broker outage, more sales).
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

import pytest

from tests.support.fake_stripe import FakeStripe

from .harness import SERVICES, Cluster, Workload, dump
from .invariants import OverdueWatch, check, table, wait_until_settled

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]

FULL = os.environ.get("FAULTS") == "full"
WINDOW = 8.0  # seconds an order holds its ticket
GRACE = 12.0  # an unpaid order is cancelled within this of its expiresAt, whatever happened
SETTINGS = {
    "EXPIRATION_WINDOW_SECONDS": WINDOW,
    "RPC_TIMEOUT": 4, "INTERNAL_RPC_TIMEOUT": 2,
    "PAYMENTS_HOLD_GRACE": 3, "PAYMENTS_HOLD_SWEEP_INTERVAL": 1,
    "PAYMENTS_RECONCILE_INTERVAL": 1, "PAYMENTS_RECONCILE_MIN_AGE": 3, "STRIPE_TIMEOUT": 3,
    "ORDERS_SWEEP_INTERVAL": 1, "ORDERS_EXPIRY_GRACE_SECONDS": 3, "ORDERS_HOLD_TIMEOUT_SECONDS": 60,
    "OUTBOX_RELAY_INTERVAL": 0.5, "HANDLER_RETRY_MAX_DELAY_SECONDS": 2,
    # ten database processes share the machine's PostgreSQL (100 connections) with everyone else
    "MAX_WORKERS": 4, "DB_POOL_SIZE": 2, "DB_MAX_OVERFLOW": 3,
    # every simulated buyer and seller comes from this one address
    "AUTH_MAX_SIGNUPS_PER_CLIENT": 10000, "AUTH_MAX_FAILURES_PER_CLIENT": 10000,
}


class Faults:
    """The fault schedule, run beside the workload; ``log`` says what was done when."""

    def __init__(self, cluster: Cluster, fake_stripe: FakeStripe, workload: Workload):
        self.cluster, self.fake_stripe, self.workload = cluster, fake_stripe, workload
        self.log: list[str] = []
        self.outages: list[tuple[datetime, datetime]] = []  # when the broker was away (wall clock)
        self.started = time.monotonic()

    def note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def kill_each_service(self, both: bool) -> None:
        for name in SERVICES + ("gateway",):
            self.note(f"kill -9 {', '.join(self.cluster.kill(name, None if both else 0))}")
            time.sleep(2.5)

    def kill_payments_mid_charge(self) -> None:
        self.fake_stripe.delay = 1.5  # charges in flight for a while
        time.sleep(2.0)
        self.note(f"kill -9 {', '.join(self.cluster.kill('payments'))} with charges in flight")
        time.sleep(1.0)
        self.fake_stripe.delay = 0.0

    def kill_payments_between_hold_and_charge(self, payers: int = 3) -> None:
        """Buyers who pay once and leave send their payments while orders is paused, so payments waits
        for the holds; both payments processes are killed meanwhile and orders resumed: it takes the
        holds of payers that are dead (the tickets a dead payments worker used to strand until
        ORDERS_HOLD_TIMEOUT_SECONDS; now released within PAYMENTS_HOLD_GRACE)."""
        ready = self.workload.reserved_orders(payers)
        self.cluster.wait_ready("payments")
        orders = self.cluster.of("orders")
        threads = [threading.Thread(target=self.workload.pay_once, args=pair, daemon=True) for pair in ready]
        self.cluster.pause(orders)
        try:
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            self.note(f"kill -9 {', '.join(self.cluster.kill('payments'))} while {len(threads)} payers waited "
                      "for their holds (orders paused)")
            time.sleep(0.5)  # below INTERNAL_RPC_TIMEOUT: the hold requests are still wanted
        finally:
            self.cluster.resume(orders)
        for thread in threads:
            thread.join()

    def terminate_database_connections(self) -> None:
        self.note(f"pg_terminate_backend: {self.cluster.terminate_database_connections()} connections")

    def broker_outage(self, seconds: float) -> None:
        cut = datetime.now(timezone.utc)
        self.cluster.link.cut()
        self.note(f"broker cut for {seconds:.0f} s")
        time.sleep(seconds)
        self.cluster.link.restore()
        self.outages.append((cut, datetime.now(timezone.utc)))
        self.note("broker back")

    def run(self, rounds: int) -> None:
        time.sleep(4)
        for round_ in range(rounds):
            full_round = round_ > 0
            self.kill_each_service(both=full_round)
            time.sleep(2)
            self.kill_payments_mid_charge()
            time.sleep(3)
            self.kill_payments_between_hold_and_charge()
            time.sleep(3)
            for _ in range(2 if not full_round else 4):
                self.terminate_database_connections()
                time.sleep(2)
            self.broker_outage(15 if full_round else 5)
            time.sleep(6)


@pytest.fixture
def fake_stripe():
    fake = FakeStripe()
    yield fake
    fake.stop()


@pytest.fixture
def cluster(rabbit_admin, postgres_admin, tmp_path, fake_stripe):
    from tests.conftest import RUN_ID

    cluster = Cluster(tmp_path, rabbit_admin, postgres_admin, RUN_ID, fake_stripe.url, SETTINGS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_purchases_survive_kills_broker_outages_and_lost_database_connections(cluster, fake_stripe, tmp_path):
    workload = Workload(cluster, journeys=120 if FULL else 30, concurrency=8 if FULL else 5)
    faults = Faults(cluster, fake_stripe, workload)
    under_way = threading.Event()
    under_way.set()

    def inject():
        try:
            faults.run(rounds=3 if FULL else 1)
        finally:
            under_way.clear()

    watch = OverdueWatch(cluster)
    watch.start()
    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    workload.run(keep_going=under_way)
    injector.join()
    busy = wait_until_settled(cluster, GRACE, timeout=120)
    watch.stop()
    time.sleep(1)
    rows = check(cluster, workload, fake_stripe, WINDOW, GRACE, watch, faults.outages)
    dump(tmp_path / "journeys.json", workload)

    print("\nfaults:\n  " + "\n  ".join(faults.log))
    print(f"\nworkload: {len(workload.journeys)} journeys; answers: "
          + ", ".join(f"{k} x{v}" for k, v in sorted(workload.stats.items()) if k != "500 bodies"))
    if busy:
        print(f"still settling after 120 s: {busy}")
    print("\n" + table(rows) + "\n")
    assert all(r.ok for r in rows), f"invariants violated (logs in {tmp_path})"
    assert not busy
