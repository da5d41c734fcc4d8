"""The one test seam for a service's database: its real ``StoreApi`` on a database of its own, without nameko.

The schema comes from the service's migrations (partial indexes and all), so
rules tests, ``worker_factory`` tests and integration tests all run against the
schema production has. What the outbox would publish after a commit is
collected in ``published`` as ``(event name, payload)``.

Two ways in:

* ``store.transaction()`` / ``store.read()``, exactly as a worker uses them;
* ``store.begin()``: a :class:`Transaction` on a session of its own that the test
  commits (or not) itself, for rules that are plain functions of ``tx``;
  ``tx.emitted`` lists what it put in the outbox.
"""
from __future__ import annotations

import importlib
import types

from nameko_sqlalchemy.database import DatabaseWrapper, Session
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.common.migrations import upgrade
from services.common.settings import ServiceSettings
from services.common.store import StoreApi, Transaction, configure_engine


class UnitTransaction(Transaction):
    def __init__(self, session, store):
        super().__init__(session, store)
        #: ``(event name, payload)`` of every event emitted, kept even if the session rolls back
        self.emitted: list[tuple[str, dict]] = []

    def emit(self, name: str, **data) -> dict:
        payload = super().emit(name, **data)
        self.emitted.append((name, payload))
        return payload


class UnitStore(StoreApi):
    def __init__(self, provider, db):
        super().__init__(provider, db)
        self.published: list[tuple[str, dict]] = []

    def session(self) -> Session:
        """A session of the test's own (the caller commits and closes it)."""
        return self._db.Session()

    def begin(self) -> UnitTransaction:
        """A transaction on a new session, left to the test to commit."""
        return UnitTransaction(self.session(), self._provider)


def unit_store(service: str, url: str) -> UnitStore:
    models = importlib.import_module(f"services.{service}.models")
    engine = create_engine(url)
    configure_engine(engine)
    upgrade(service, engine)

    def publish_rows(rows):
        store.published.extend((row.event_name, row.payload) for row in rows)

    provider = types.SimpleNamespace(engine=engine, outbox_model=getattr(models, "OutboxMessage", None),
                                     processed_model=getattr(models, "ProcessedEvent", None),
                                     publish_rows=publish_rows, settings=ServiceSettings())
    store = UnitStore(provider, DatabaseWrapper(sessionmaker(bind=engine, class_=Session, expire_on_commit=False)))
    return store


def sqlite_store(service: str, directory) -> UnitStore:
    """:func:`unit_store` on a SQLite file in ``directory`` (a test's ``tmp_path``)."""
    return unit_store(service, f"sqlite:///{directory / f'{service}.db'}")
