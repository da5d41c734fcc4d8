"""A service's database: sessions, the transactional outbox and the idempotent-consumer record.

Usage inside a nameko service::

    store = Store(Base)                  # a nameko DependencyProvider

    with self.store.transaction() as tx:  # one database transaction
        ticket = Ticket(...); tx.session.add(ticket)
        tx.emit(events.TICKET_CREATED, **ticket.to_event())   # an outbox row, same transaction
    # committed; the events are published now, after the commit

If the process dies between the commit and the publish, the outbox relay (a
thread of this provider) publishes the row a moment later, so no event is lost;
consumers drop the duplicate that a crash *after* the publish can cause, by
recording event ids in the same transaction as their effect
(:meth:`Transaction.first_delivery`).
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import eventlet
from nameko.standalone.events import get_event_exchange
from nameko_sqlalchemy import Database
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, TypeDecorator, delete, event, select, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from . import config, events, green_psycopg, logs, metrics
from .confirms import ConfirmedPublisher, Outgoing
from .events import utcnow
from .settings import settings_of

log = logging.getLogger(__name__)

#: how often rows already published are deleted from the outbox (in one batch)
FORGET_INTERVAL = 0.1


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Money(TypeDecorator):
    """An exact amount of money stored as integer cents (never a float, on any database)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        cents = Decimal(value) * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{value} has more than 2 decimals")
        return int(cents)

    def process_result_value(self, value, dialect):
        return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


class OutboxRecord:
    """Mixin for a service's ``outbox`` table: events committed, not yet published.

    ``class OutboxMessage(OutboxRecord, Base): pass`` in a service's models."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_name: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    #: the correlation id of the request or event that caused it: published with the event,
    #: even by the relay after a restart
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProcessedEventRecord:
    """Mixin for a service's ``processed_events`` table: (event id, consumer) applied.

    ``class ProcessedEvent(ProcessedEventRecord, Base): pass`` in a service's models."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Transaction:
    def __init__(self, session, store: "Store"):
        self.session = session
        self._store = store
        self.outbox_rows: list = []

    def emit(self, name: str, **data) -> dict:
        """Record event ``name`` in the outbox, in this transaction. Returns the payload."""
        payload = events.new_event(name, **data)
        row = self._store.outbox_model(event_name=name, payload=payload, correlation_id=logs.correlation_id())
        self.session.add(row)
        self.outbox_rows.append(row)
        return payload

    def first_delivery(self, event: events.Event, consumer: str) -> bool:
        """Record that ``consumer`` applies ``event``; False if it already did (a redelivery).

        One ``INSERT … ON CONFLICT DO NOTHING``: a concurrent delivery of the same event
        waits on the row and then finds it taken."""
        table = self._store.processed_model.__table__
        result = Store.upsert(self.session, table, {"event_id": event.eventId, "consumer": consumer,
                                                    "processed_at": utcnow()}, returning=[table.c.event_id])
        return result.first() is not None


class Store(Database):
    """nameko-sqlalchemy's Database plus migrations, the outbox and its relay.

    Migrations run in :meth:`setup` unless the config says ``SCHEMA_MIGRATED`` (see
    ``ticketing.cli.migrate_in_child``)."""

    @staticmethod
    def lock_rows(query):
        """``query`` (a SELECT of rows about to change) made to lock what it reads until the
        transaction ends, whatever the database: ``SELECT ... FOR UPDATE OF <its table>`` on
        PostgreSQL; on SQLite, which has no row locks, running it first takes the database's
        write lock (see :func:`configure_engine`), so the read sees the latest committed state
        and no other writer gets in before this transaction ends."""
        table = query.columns_clause_froms[0]  # the table of what it selects (not its joins)
        return query.with_for_update(of=table).execution_options(**{SQLITE_WRITE_LOCK: table.name})

    @staticmethod
    def upsert(session, table, values: dict | list[dict], *, index_elements=None, set_=None, returning=()):
        """``INSERT … ON CONFLICT DO NOTHING`` (or, given ``set_``, ``ON CONFLICT (index_elements) DO
        UPDATE SET …``) ``RETURNING returning``, in ``session``, whatever the database: one statement, so
        two concurrent inserts of one key never fail on it (the second waits for the first, then does
        nothing or updates). ``values``: one row, or a list of rows inserted by the same statement.
        PostgreSQL and SQLite each need their own dialect's ``insert``; this is the one place that
        chooses it. Returns the result (``.first()`` is None when nothing was inserted)."""
        insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}[session.bind.dialect.name]
        statement = insert(table).values(values)
        if set_ is None:
            statement = statement.on_conflict_do_nothing(index_elements=index_elements)
        else:
            statement = statement.on_conflict_do_update(index_elements=index_elements, set_=set_)
        if returning:
            statement = statement.returning(*returning)
        return session.execute(statement)

    def __init__(self, declarative_base, outbox_model=None, processed_model=None, **options):
        # rows stay readable after commit: the outbox rows are published from memory
        options.setdefault("session_options", {"expire_on_commit": False})
        super().__init__(declarative_base, **options)
        self.outbox_model = outbox_model
        self.processed_model = processed_model

    # -- lifecycle -------------------------------------------------------
    def setup(self):
        green_psycopg.install()
        url = self.container.config["DB_URIS"][f"{self.container.service_name}:{self.declarative_base.__name__}"]
        self.settings = settings_of(self.container)
        if not url.startswith("sqlite"):
            # More connections than workers (plus the relay), or waiting workers stall the rest.
            # DB_POOL_SIZE / DB_MAX_OVERFLOW cap it where many processes share one server's connections.
            workers = self.container.config.get("max_workers", 10)
            self.engine_options.setdefault("pool_size", self.settings.db_pool_size or workers + 5)
            self.engine_options.setdefault("max_overflow", self.settings.db_max_overflow)
        super().setup()
        configure_engine(self.engine)
        if not url.startswith("sqlite"):
            ping_when_idle(self.engine)
        if not self.container.config.get(config.SCHEMA_MIGRATED):
            from .migrations import upgrade

            upgrade(self.container.service_name, self.engine)
        self.publisher = ConfirmedPublisher(self.settings.amqp_uri)
        self.exchange = get_event_exchange(self.container.service_name, self.container.config)
        self._running = False
        self._published: list[int] = []
        #: rows this process is publishing right now
        self._in_flight: set[int] = set()

    def start(self):
        if self.outbox_model is not None:
            self._running = True
            self.container.spawn_managed_thread(self._relay_forever)
            self.container.spawn_managed_thread(self._forget_published_forever)

    def stop(self):
        self._running = False
        super().stop()

    def kill(self):
        self._running = False
        super().kill()

    def get_dependency(self, worker_ctx):
        return StoreApi(self, super().get_dependency(worker_ctx))

    # -- outbox ----------------------------------------------------------
    def publish_rows(self, rows) -> None:
        """Publish outbox rows (already committed); they are deleted in batches moments later.

        A row published but not yet deleted when the process dies is published again by
        the relay: a duplicate, which consumers drop. Deleting in batches saves a
        transaction per event on the hot path."""
        ids = [row.id for row in rows]
        self._in_flight.update(ids)  # not for the relay meanwhile, however long the broker takes
        try:
            self._publish(*rows)
        finally:
            self._in_flight.difference_update(ids)
        self._published.extend(ids)

    def _publish(self, *rows) -> None:
        """On this service's nameko event exchange, as nameko's EventDispatcher would, with the
        correlation id of the request that caused it in the header nameko passes on; all rows
        at once, then one wait for the broker's confirms (:class:`ConfirmedPublisher`)."""
        self.publisher.publish([
            Outgoing(row.payload, self.exchange, row.event_name, declare=[self.exchange],
                     headers={logs.CORRELATION_HEADER: row.correlation_id} if row.correlation_id else {})
            for row in rows])
        for row in rows:
            metrics.EVENTS_PUBLISHED.labels(self.container.service_name, row.event_name).inc()

    def forget_published(self) -> int:
        ids, self._published[:] = list(self._published), []
        if ids:
            with self.Session() as session:
                session.execute(delete(self.outbox_model).where(self.outbox_model.id.in_(ids)))
                session.commit()
        return len(ids)

    def relay_once(self, grace: float | None = None) -> int:
        """Publish what a crash or a broker outage left in the outbox (rows older than ``grace``,
        default ``OUTBOX_RELAY_GRACE``). Returns how many."""
        grace = self.settings.outbox_relay_grace if grace is None else grace
        cutoff = utcnow() - timedelta(seconds=grace)
        model = self.outbox_model
        with self.Session() as session:
            query = select(model).where(model.created_at <= cutoff).order_by(model.id).limit(500)
            if self._in_flight:
                query = query.where(model.id.not_in(list(self._in_flight)))
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            if rows:
                self._publish(*rows)
                session.execute(delete(model).where(model.id.in_([r.id for r in rows])))
                log.info("outbox relay published %d event(s) left unpublished", len(rows), extra={"count": len(rows)})
            session.commit()
            return len(rows)

    def _forget_published_forever(self):
        while self._running:
            eventlet.sleep(FORGET_INTERVAL)
            try:
                self.forget_published()
            except Exception:  # the relay would republish them: duplicates, not losses
                log.exception("could not delete published outbox rows")

    def _relay_forever(self):
        while self._running:
            try:
                self.relay_once()
            except Exception:  # broker or database away: try again next round
                log.exception("outbox relay failed; retrying in %ss", self.settings.outbox_relay_interval)
            eventlet.sleep(self.settings.outbox_relay_interval)


class StoreApi:
    """What a worker sees as ``self.store``."""

    def __init__(self, provider: Store, db):
        self._provider = provider
        self._db = db

    @property
    def engine(self):
        return self._provider.engine

    @contextmanager
    def read(self):
        """A session for reads; nothing is committed."""
        session = self._db.get_session()
        try:
            yield session
        finally:
            session.rollback()

    @contextmanager
    def transaction(self):
        """One database transaction; commits on success, then publishes what it emitted."""
        session = self._db.get_session()
        tx = Transaction(session, self._provider)
        try:
            yield tx
            session.commit()
        except BaseException:
            session.rollback()
            raise
        if tx.outbox_rows:
            crash_after = self._provider.settings.ticketing_crash_after_commit  # a test hook
            if crash_after and any(r.event_name == crash_after for r in tx.outbox_rows):
                log.warning("test hook: exiting between commit and publish of %s", crash_after)
                os._exit(70)
            try:
                self._provider.publish_rows(tx.outbox_rows)
            except Exception:
                # Committed, so not lost: the relay publishes it once the broker is back.
                log.exception("publishing after commit failed; the outbox relay will retry")

    @contextmanager
    def claim(self, query, *, wait: bool = False):
        """The row ``query`` selects, for slow work (a call to another system) whose result is then
        written, with no other worker doing the same work on that row at the same time where the
        database can promise it. Yields a :class:`Claim`; its ``row`` is None if there is no such row
        or, on PostgreSQL, if another transaction holds it (with ``wait``: once that one has ended,
        if the row no longer matches).

        PostgreSQL: the row is locked (``SELECT ... FOR UPDATE SKIP LOCKED``, or without ``SKIP
        LOCKED`` if ``wait``) for the whole block, in one transaction that :meth:`Claim.transaction`
        joins; it commits when the block ends.
        SQLite (no row locks, and a write transaction held over the slow work would stop every other
        writer): ``row`` is a detached snapshot and :meth:`Claim.transaction` is a transaction of its
        own, so the write must be conditional (``UPDATE ... WHERE state = ...``): the first one wins."""
        if self.engine.dialect.name == "postgresql":
            with self.transaction() as tx:
                yield Claim(tx.session.scalars(query.with_for_update(skip_locked=not wait)).first(), tx=tx)
            return
        with self.read() as session:
            row = session.scalars(query).first()
            if row is not None:
                session.expunge(row)  # a plain snapshot: the read's rollback must not expire it
        yield Claim(row, store=self)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


class Claim:
    """What :meth:`StoreApi.claim` yields: the row, and the transaction to write its result in."""

    def __init__(self, row, *, tx: Transaction | None = None, store: StoreApi | None = None):
        self.row = row
        self._tx, self._store = tx, store

    @contextmanager
    def transaction(self):
        """The claim's own transaction where the row is locked (committed when the claim ends), else a
        new one (committed when this block ends)."""
        if self._tx is not None:
            yield self._tx
            return
        with self._store.transaction() as tx:
            yield tx


#: the execution option :meth:`Store.lock_rows` sets: the table whose rows a query locks (SQLite only)
SQLITE_WRITE_LOCK = "sqlite_write_lock"


#: a pooled connection idle at least this long (seconds) is pinged before it is handed out
IDLE_PING_SECONDS = 1.0


def ping_when_idle(engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Check a pooled connection with a round trip at checkout only if it sat in the pool for
    ``idle_seconds`` or more; one that fails is replaced before anyone uses it.

    A connection whose backend was terminated (a restart, a failover, an operator's
    ``pg_terminate_backend``) is then noticed while idle, instead of failing a request.
    SQLAlchemy's ``pool_pre_ping`` does the same at *every* checkout: under load that ping was
    about a tenth of the tickets service's busy time on reads, for connections used a few
    milliseconds earlier. A backend killed in the last second before a checkout still fails
    that one statement; SQLAlchemy then invalidates the whole pool, so the next ones reconnect."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # the pool drops this connection and checks out another (SQLAlchemy's documented way)
            raise DisconnectionError(f"a pooled connection failed its ping: {exc!r}") from exc


def configure_engine(engine) -> None:
    """SQLite: WAL and a busy timeout so that concurrent writers wait instead of failing, and the
    write lock that stands in for row locks (:meth:`Store.lock_rows`)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "before_execute")
    def _write_lock_first(conn, clauseelement, multiparams, params, execution_options):
        table = execution_options.get(SQLITE_WRITE_LOCK)
        if table:
            # A write that changes nothing still opens a write transaction (the driver begins one
            # before any UPDATE) and takes SQLite's one write lock, held until commit or rollback.
            quoted = conn.dialect.identifier_preparer.quote(table)
            conn.exec_driver_sql(f"UPDATE {quoted} SET rowid = rowid WHERE 0")

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

