import types

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.common.store import Transaction, configure_engine


@pytest.fixture
def make_session(tmp_path):
    """A SQLite session on a fresh schema for a service's models module."""

    def make(models):
        engine = create_engine(f"sqlite:///{tmp_path / 'unit.db'}")
        configure_engine(engine)
        models.Base.metadata.create_all(engine)
        return Session(engine, expire_on_commit=False)

    return make


@pytest.fixture
def make_tx():
    """A Transaction bound to a session, recording emitted events like the real outbox."""

    def make(session, models):
        store = types.SimpleNamespace(outbox_model=getattr(models, "OutboxMessage", None),
                                      processed_model=getattr(models, "ProcessedEvent", None))
        return Transaction(session, store)

    return make
