"""A service's real ``StoreApi`` on a SQLite file, without nameko: for rules tests and ``worker_factory``.

The schema comes from the service's migrations; what the outbox would publish
after a commit is collected in ``published`` as ``(event name, payload)``.
"""
from __future__ import annotations

import importlib
import types

from nameko_sqlalchemy.database import DatabaseWrapper, Session
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.common.migrations import upgrade
from services.common.store import StoreApi, configure_engine


def unit_store(service: str, url: str) -> StoreApi:
    models = importlib.import_module(f"services.{service}.models")
    engine = create_engine(url)
    configure_engine(engine)
    upgrade(service, engine)
    published: list = []

    def publish_rows(rows):
        published.extend((row.event_name, row.payload) for row in rows)

    provider = types.SimpleNamespace(engine=engine, outbox_model=getattr(models, "OutboxMessage", None),
                                     processed_model=getattr(models, "ProcessedEvent", None),
                                     publish_rows=publish_rows)
    store = StoreApi(provider, DatabaseWrapper(sessionmaker(bind=engine, class_=Session, expire_on_commit=False)))
    store.published = published
    return store
