"""PostgreSQL queries in a nameko service are green (concurrent) and cheap."""
import time

import eventlet
import psycopg
import pytest

from services.common import green_psycopg
from tests.support.postgres import ADMIN_URL

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def installed(monkeypatch):
    monkeypatch.setattr(psycopg.waiting, "wait", psycopg.waiting.wait)  # restored afterwards
    green_psycopg.install()
    assert psycopg.waiting.wait is green_psycopg.wait_green


def test_slow_queries_run_side_by_side():
    def sleep_in_postgres():
        with psycopg.connect(ADMIN_URL) as conn:
            conn.execute("SELECT pg_sleep(0.5)")

    started = time.monotonic()
    pool = eventlet.GreenPool()
    for _ in range(4):
        pool.spawn(sleep_in_postgres)
    pool.waitall()
    assert time.monotonic() - started < 1.2  # serially it would be 2 s


def test_a_round_trip_costs_well_under_a_millisecond_of_waiting():
    with psycopg.connect(ADMIN_URL) as conn:
        started = time.monotonic()
        for _ in range(200):
            conn.execute("SELECT 1").fetchall()
            conn.commit()
        per_query = (time.monotonic() - started) / 200
    assert per_query < 0.0015  # green select: ~2.2 ms here
