"""Expiry benchmark: 10,000 orders with windows spread over 30-60 s; how late is each cancellation?

    .venv/bin/python -m bench.expiry [--orders 10000] [--min 30] [--max 60]

Starts the whole app with ``ticketing up`` (PostgreSQL, a fresh RabbitMQ vhost),
writes N reserved tickets and ``created`` orders straight into the tickets and
orders databases (bulk, so that creating them does not dominate), hands every
order's ``order:created`` to the expiration service's inbox queue, then listens
on the ``orders.events`` exchange. Lateness = arrival of ``order:cancelled``
minus the order's ``expiresAt``: the whole path (holding queues, the
expiration service, ``expiration:complete``, the orders service's transaction
and outbox). The orders safety net is switched off
(``ORDERS_EXPIRY_GRACE_SECONDS=3600``) so that a lost expiry counts as lost.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko 2 needs it

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

from kombu import Connection, Exchange  # noqa: E402
from sqlalchemy import create_engine, func, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from services.common import events  # noqa: E402
from services.common.net import free_port  # noqa: E402
from services.orders.models import Order, TicketReplica  # noqa: E402
from services.tickets.models import Ticket  # noqa: E402
from tests.e2e.orders_support import EventTap  # noqa: E402
from tests.support.live import LiveApp  # noqa: E402
from tests.support.postgres import PostgresAdmin  # noqa: E402
from tests.support.rabbit import RabbitAdmin  # noqa: E402

EXPIRATION_INBOX = "evt-orders-order:created--expiration.on_order_created"
SELLER, BUYER = "5" * 32, "b" * 32


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def seed(app: LiveApp, n: int, low: float, high: float) -> dict[str, datetime]:
    start = datetime.now(timezone.utc)
    deadlines = {uuid.uuid4().hex: start + timedelta(seconds=random.uniform(low, high)) for _ in range(n)}
    ticket_ids = {order_id: uuid.uuid4().hex for order_id in deadlines}
    price = Decimal("10.00")
    tickets = create_engine(app.env["TICKETS_DATABASE_URL"])
    with Session(tickets) as session, session.begin():  # ORM bulk insert: attribute names, Money in cents
        session.execute(insert(Ticket), [
            {"id": ticket_ids[o], "title": "Bench", "price": price, "user_id": SELLER, "order_id": o,
             "version": 1, "created_at": start} for o in deadlines])
    orders = create_engine(app.env["ORDERS_DATABASE_URL"])
    with Session(orders) as session, session.begin():
        session.execute(insert(TicketReplica), [
            {"id": ticket_ids[o], "title": "Bench", "price": price, "user_id": SELLER, "version": 1}
            for o in deadlines])
        session.execute(insert(Order), [
            {"id": o, "user_id": BUYER, "user_email": "bench@example.com", "ticket_id": ticket_ids[o],
             "status": "created", "expires_at": at, "version": 0, "created_at": start}
            for o, at in deadlines.items()])
    with Connection(app.env["AMQP_URI"]) as connection:
        producer = connection.Producer(serializer="json")
        for o, at in deadlines.items():
            payload = events.new_event(events.ORDER_CREATED, id=o, version=0, status="created", userId=BUYER,
                                       userEmail="bench@example.com", expiresAt=events.isoformat(at),
                                       ticket={"id": ticket_ids[o], "price": price})
            producer.publish(payload, exchange=Exchange(""), routing_key=EXPIRATION_INBOX, delivery_mode=2)
    return deadlines


def run(orders: int = 10_000, low: float = 30.0, high: float = 60.0, sampler=None, say=print,
        rabbit: RabbitAdmin | None = None, brokers: tuple[str, ...] = ("amqp://guest:guest@127.0.0.1:5672",)) -> dict:
    """Start the app, schedule ``orders`` expiries over ``low``-``high`` s, and measure; returns the figures.
    ``rabbit`` and ``brokers``: another RabbitMQ than the machine's (``make bench --own-broker``)."""
    run_id = uuid.uuid4().hex[:8]
    rabbit, postgres = rabbit or RabbitAdmin(), PostgresAdmin(prefix=f"ticketing_bench_{run_id}")
    workdir = Path(tempfile.mkdtemp(prefix="ticketing-bench-"))
    say(f"starting ticketing up (log: {workdir / 'ticketing-up.log'}) ...")
    app = LiveApp.start(rabbit, postgres, workdir, port=free_port(), run_id=run_id, brokers=brokers,
                        env={"ORDERS_EXPIRY_GRACE_SECONDS": "3600", "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")})
    if sampler is not None:
        sampler.watch(app.process.pid)
    tap = None
    result: dict = {"orders": orders, "window_s": [low, high], "log": str(app.log_path)}
    try:
        tap = EventTap(app.env["AMQP_URI"], {"orders": ["order:cancelled"], "expiration": ["expiration:complete"]})
        began = time.time()
        deadlines = seed(app, orders, low, high)
        say(f"scheduled {len(deadlines)} orders in {time.time() - began:.1f} s, "
            f"windows {low:.0f}-{high:.0f} s; waiting ...")
        last = max(deadlines.values()).timestamp()
        while time.time() < last + 10 and len(tap.events("order:cancelled")) < len(deadlines):
            time.sleep(0.5)

        def lateness(name, key):
            first: dict[str, float] = {}
            for at, payload in tap.events(name):
                if payload[key] in deadlines:
                    first.setdefault(payload[key], at - deadlines[payload[key]].timestamp())
            return first

        for label, late in (("expiration:complete", lateness("expiration:complete", "orderId")),
                            ("order:cancelled", lateness("order:cancelled", "id"))):
            values = list(late.values()) or [float("nan")]
            figures = {"n": len(late), "p50_s": round(statistics.median(values), 3),
                       "p99_s": round(percentile(values, 99), 3), "max_s": round(max(values), 3),
                       "min_s": round(min(values), 3), "lost": len(deadlines) - len(late)}
            result[label] = figures
            say(f"{label:>20}: n={figures['n']} p50={figures['p50_s']:.3f}s p99={figures['p99_s']:.3f}s "
                f"max={figures['max_s']:.3f}s min={figures['min_s']:.3f}s lost={figures['lost']}")
        with create_engine(app.env["ORDERS_DATABASE_URL"]).connect() as conn:
            cancelled = conn.execute(select(func.count()).select_from(Order)
                                     .where(Order.status == "cancelled")).scalar()
        with create_engine(app.env["TICKETS_DATABASE_URL"]).connect() as conn:
            released = conn.execute(select(func.count()).select_from(Ticket)
                                    .where(Ticket.order_id.is_(None))).scalar()
        result.update(cancelled_in_db=cancelled, tickets_back_on_sale=released)
        say(f"orders cancelled in the database: {cancelled}/{len(deadlines)}; "
            f"tickets back on sale: {released}/{len(deadlines)}")
    finally:
        if tap:
            tap.close()
        if sampler is not None:
            sampler.sample()
        app.stop()
        postgres.drop_all()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--min", type=float, default=30.0, help="shortest window, seconds")
    parser.add_argument("--max", type=float, default=60.0, help="longest window, seconds")
    args = parser.parse_args()
    run(args.orders, args.min, args.max, say=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
