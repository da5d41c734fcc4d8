"""Pooled PostgreSQL connections: pinged only after sitting idle, replaced when their backend is gone."""
import time

import pytest
from sqlalchemy import create_engine, text

from services.common.store import ping_when_idle
from tests.support.postgres import PostgresAdmin

URL = PostgresAdmin(prefix="unused").url("postgres")  # the admin database, through psycopg 3

pytestmark = pytest.mark.integration


@pytest.fixture
def engine():
    engine = create_engine(URL, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=0.2)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine, monkeypatch):
    count = []
    real = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: count.append(1) or real(conn))
    return count


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_reused_at_once_is_not_pinged(engine, pings):
    first = backend_pid(engine)
    assert [backend_pid(engine) for _ in range(5)] == [first] * 5
    assert pings == []


def test_a_connection_whose_backend_was_terminated_while_idle_is_replaced_before_use(engine, pings):
    first = backend_pid(engine)
    with create_engine(URL).connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
    time.sleep(0.3)  # idle longer than idle_seconds
    assert backend_pid(engine) != first  # no error: the dead connection failed its ping and was replaced
    assert pings == [1]
