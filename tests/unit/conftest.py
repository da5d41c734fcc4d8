import pytest

from tests.support.unit_store import sqlite_store


@pytest.fixture
def make_store(tmp_path):
    """A service's real store on a SQLite file of this test (tests/support/unit_store.py): ``make_store("tickets")``."""
    return lambda service: sqlite_store(service, tmp_path)
