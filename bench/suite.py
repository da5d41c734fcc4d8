"""``make bench``: the on-sale figures of the whole app on PostgreSQL, with each target marked PASS/FAIL.

    .venv/bin/python -m bench [--quick] [--json artifacts/bench.json] [--no-expiry] [--own-broker]
    QUEUE_TYPE=quorum .venv/bin/python -m bench --own-broker      # the same on quorum queues

Starts the app as production runs it (``ticketing up``: every service, gunicorn
for the web tier; PostgreSQL; a fresh RabbitMQ vhost), plus a floor route in the
same run (Flask under the same web server making one nameko RPC to a no-op
service, ``bench/floor.py``). Then, one after the other:

* reads: the floor, GET /api/tickets/:id and the first page, at c=8 and c=32 (wrk);
* writes: POST /api/tickets and POST /api/orders (a fresh ticket each) at c=8,
  with the time the system needs to drain (outboxes empty, no message waiting,
  every reservation applied) after the load stops;
* whole purchases (order -> pay -> ``order:completed``) by 8 buyers in a loop;
* flash sales with idle keep-alive connections held open around them: 500 and
  2,000 buyers for one ticket, 2,000 buyers for 200 tickets;
* propagation: ticket created -> orderable (the seller's own order turns from
  404 into 409, which changes nothing);
* the expiry run of ``bench/expiry.py`` (10,000 orders over 30-60 s) on an app of its own;
* peak RSS and CPU of every component, sampled from /proc all along.

``--quick`` shrinks every phase (seconds instead of tens of seconds, smaller
crowds, 500 expiries over 5-10 s) to check the harness; its figures are not
the targets' figures. Timings are only comparable between runs on a quiet machine.

``--own-broker`` runs everything on a one-node RabbitMQ of the bench's own
(started and removed by it, with the open-files limit raised to the hard limit)
instead of the machine's: every quorum queue holds files open, and the holding
queues of the expiry run alone are about 300 queues, more than a broker with the
usual 1,024-file limit can keep. Compare classic and quorum on the same kind of broker.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko 2 needs it

import eventlet  # noqa: E402

eventlet.monkey_patch()  # the event tap and the crowds run green, beside the wrk subprocesses

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import requests  # noqa: E402
from kombu import Connection  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench import crowd, wrk  # noqa: E402
from bench.procs import Sampler  # noqa: E402
from services.common.net import free_port  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from tests.e2e.orders_support import EventTap, vhost_of  # noqa: E402
from tests.support.live import LiveApp  # noqa: E402
from tests.support.postgres import PostgresAdmin  # noqa: E402
from tests.support.rabbit import RabbitAdmin  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402
from ticketing.web import raise_fd_limit  # noqa: E402

ROOT = Path(__file__).parents[1]
TICKET_BODY = '{"title": "Bench seat", "price": 12.5}'


@dataclass(frozen=True)
class Sizes:
    load_seconds: float = 10       # each wrk run
    purchase_seconds: float = 10
    buyers: int = 8                # accounts the buyers share
    idle: int = 1000               # idle keep-alive connections around each flash sale
    flash_one: tuple = (500, 2000)  # buyers for one ticket
    flash_many: tuple = (2000, 200)  # buyers, tickets
    propagation_samples: int = 20
    expiry_orders: int = 10_000
    expiry_window: tuple = (30.0, 60.0)
    order_tickets: int = 4000      # fresh tickets for the POST /api/orders run


FULL = Sizes()
QUICK = Sizes(load_seconds=3, purchase_seconds=3, idle=200, flash_one=(100, 300), flash_many=(300, 30),
              propagation_samples=5, expiry_orders=500, expiry_window=(10.0, 20.0), order_tickets=1200)

TARGETS = {
    "read_vs_floor": 0.9, "read_p99_ms": 80, "orders_rps": 250, "orders_p99_ms": 100, "orders_drain_s": 2.0,
    "purchases_per_s": 80, "flash_p99_s": 1.5, "expiry_p99_s": 1.0, "expiry_max_s": 2.0, "rss_mb": 150,
}


def _round(value):
    return None if value is None else round(value, 3)


def say(line: str = "") -> None:
    print(line, flush=True)


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path, rabbit: RabbitAdmin, brokers: tuple[str, ...]):
        self.busy_answers = 0  # 503s create_ticket retried
        self.sizes, self.workdir = sizes, workdir
        self.rabbit, self.brokers = rabbit, brokers
        self.results: dict = {}
        self.sampler = Sampler().start()
        self.floor_processes: list[subprocess.Popen] = []

    # ------------------------------------------------------------------ the app
    def start(self) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.postgres = PostgresAdmin(prefix=f"ticketing_bench_{run_id}")
        say(f"starting ticketing up on PostgreSQL (log: {self.workdir / 'ticketing-up.log'}) ...")
        env = {"LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO")}
        self.app = LiveApp.start(self.rabbit, self.postgres, self.workdir, port=free_port(), run_id=run_id, env=env,
                                 brokers=self.brokers)
        self.sampler.watch(self.app.process.pid)
        self.url = self.app.url
        self.floor_url = f"http://127.0.0.1:{free_port()}"
        floor_env = {**self.app.env, "PORT": str(urlparse(self.floor_url).port), "HOST": "127.0.0.1"}
        for role in ("service", "web"):
            process = subprocess.Popen([sys.executable, "-m", "bench.floor", role], cwd=ROOT, env=floor_env,
                                       stdout=(self.workdir / f"floor-{role}.log").open("w"), stderr=subprocess.STDOUT)
            self.floor_processes.append(process)
            self.sampler.watch(process.pid)
        wait_for(lambda: self._status(f"{self.floor_url}/floor") == 200, timeout=60, what="the floor route")

    def stop(self) -> None:
        for process in self.floor_processes:
            process.terminate()
        for process in self.floor_processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.sampler.sample()
        self.app.stop()
        self.postgres.drop_all()

    @staticmethod
    def _status(url: str, **kwargs) -> int | None:
        try:
            return requests.get(url, timeout=5, **kwargs).status_code
        except requests.RequestException:
            return None

    # ------------------------------------------------------------------ users and tickets
    def signup(self, label: str) -> str:
        email = f"{label}-{uuid.uuid4().hex[:10]}@example.com"
        response = requests.post(f"{self.url}/api/users/signup", json={"email": email, "password": "bench-password"},
                                 timeout=30)
        response.raise_for_status()
        return response.cookies["ticketing_access"]

    def auth(self, token: str) -> dict:
        return {"Authorization": f"Bearer {token}"}

    def create_ticket(self) -> tuple[str, float]:
        """A 503 (the web tier shedding load, with ``Retry-After``) is retried as a browser's user would,
        for 10 s at most; how many there were over the whole run is part of the results (``busy_answers``)."""
        deadline = time.monotonic() + 10
        while True:
            response = requests.post(f"{self.url}/api/tickets", data=TICKET_BODY, timeout=30,
                                     headers={**self.auth(self.seller), "Content-Type": "application/json"})
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            self.busy_answers += 1
            time.sleep(float(response.headers.get("Retry-After", 1)))
        response.raise_for_status()
        return response.json()["id"], time.monotonic()

    def orderable(self, ticket_id: str) -> bool:
        """The seller's own order is refused with 409 once orders knows the ticket (404 before): no side effect."""
        response = requests.post(f"{self.url}/api/orders", json={"ticketId": ticket_id}, timeout=30,
                                 headers=self.auth(self.seller))
        if response.status_code not in (404, 409):
            raise RuntimeError(f"probe of {ticket_id}: {response.status_code} {response.text}")
        return response.status_code == 409

    def tickets(self, n: int) -> list[str]:
        """n fresh tickets the orders service knows, made through the API (wrk at c=8 when many)."""
        ids: list[str] = []
        while len(ids) < n:
            if n - len(ids) < 40:
                ids += [self.create_ticket()[0] for _ in range(n - len(ids))]
                break
            out = self.workdir / f"ids-{uuid.uuid4().hex[:6]}.txt"
            wrk.run(self.url, connections=8, seconds=max(2, min(20, (n - len(ids)) / 100)), method="POST",
                    path="/api/tickets", token=self.seller, body=TICKET_BODY, ids_out=out)
            ids += out.read_text().split()
        for ticket_id in ids[-3:]:
            wait_for(lambda t=ticket_id: self.orderable(t), timeout=60, what=f"ticket {ticket_id} orderable",
                     interval=0.2)
        return ids[:n]

    # ------------------------------------------------------------------ drain
    def _drained(self, reserved_at_least: int) -> bool:
        for service in ("tickets", "orders", "payments"):
            with self.engines[service].connect() as conn:
                if conn.execute(text("SELECT count(*) FROM outbox")).scalar():
                    return False
        with self.engines["tickets"].connect() as conn:
            reserved = conn.execute(text("SELECT count(*) FROM tickets WHERE order_id IS NOT NULL")).scalar()
        if reserved < reserved_at_least:
            return False
        with Connection(self.app.env["AMQP_URI"]) as connection:
            channel = connection.channel()
            for name in self.work_queues:
                try:
                    if channel.queue_declare(queue=name, passive=True).message_count:
                        return False
                except Exception:  # a queue that went away holds nothing
                    channel = connection.channel()
        return True

    def drain_time(self, reserved_at_least: int = 0, timeout: float = 60) -> float | None:
        """Seconds from now until nothing is left to do (None: not within ``timeout``)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self._drained(reserved_at_least):
                return round(time.monotonic() - began, 2)
            time.sleep(0.05)
        return None

    def reserved(self) -> int:
        with self.engines["tickets"].connect() as conn:
            return conn.execute(text("SELECT count(*) FROM tickets WHERE order_id IS NOT NULL")).scalar()

    # ------------------------------------------------------------------ phases
    def prepare(self) -> None:
        self.seller = self.signup("seller")
        self.buyers = [self.signup(f"buyer{i}") for i in range(self.sizes.buyers)]
        self.engines = {s: create_engine(self.app.env[f"{s.upper()}_DATABASE_URL"]) for s in ("tickets", "orders", "payments")}
        # where work waits: every queue but the holding (delay) queues, parked messages, replies and taps
        self.work_queues = [name for name in self.rabbit.queues(vhost_of(self.app.env["AMQP_URI"]))
                            if not name.startswith(("delay.", "test-tap")) and not name.endswith(".parked")
                            and "reply" not in name]

    def reads(self) -> None:
        s = self.sizes
        self.read_ticket = self.tickets(60)[0]
        rows = {}
        for connections in (8, 32):
            for name, base, path in (("floor", self.floor_url, "/floor"),
                                     ("GET /api/tickets/:id", self.url, f"/api/tickets/{self.read_ticket}"),
                                     ("GET /api/tickets", self.url, "/api/tickets")):
                self.sampler.mark(f"{name} c={connections} (before)")
                rows[f"{name} c={connections}"] = wrk.run(base, connections=connections, seconds=s.load_seconds, path=path)
                self.sampler.mark(f"{name} c={connections}")
                say(f"  {name} c={connections}: {rows[f'{name} c={connections}']}")
        self.results["reads"] = rows

    def writes(self) -> None:
        s = self.sizes
        out = self.workdir / "created.txt"
        reserved_before = self.reserved()
        self.sampler.mark("POST /api/tickets (before)")
        created = wrk.run(self.url, connections=8, seconds=s.load_seconds, method="POST", path="/api/tickets",
                          token=self.seller, body=TICKET_BODY, ids_out=out)
        created["drain_s"] = self.drain_time()
        self.sampler.mark("POST /api/tickets c=8")
        say(f"  POST /api/tickets c=8: {created}")

        fresh = out.read_text().split()
        for ticket_id in fresh[-3:]:
            wait_for(lambda t=ticket_id: self.orderable(t), timeout=60, what="the created tickets orderable",
                     interval=0.2)
        if len(fresh) < s.order_tickets:
            fresh += self.tickets(s.order_tickets - len(fresh))
        ids = self.workdir / "order-tickets.txt"
        ids.write_text("\n".join(fresh))
        self.sampler.mark("POST /api/orders (before)")
        ordered = wrk.run(self.url, connections=8, seconds=s.load_seconds, method="POST", path="/api/orders",
                          token=self.buyers[0], body='{"ticketId": "{id}"}', ids_in=ids)
        ordered["drain_s"] = self.drain_time(reserved_before + ordered["statuses"].get("201", 0))
        self.sampler.mark("POST /api/orders c=8")
        ordered["fresh_tickets"] = len(fresh)
        say(f"  POST /api/orders c=8: {ordered}")
        self.results["writes"] = {"POST /api/tickets c=8": created, "POST /api/orders c=8": ordered}

    def purchases(self) -> None:
        s = self.sizes
        pool = self.tickets(int(max(200, 150 * s.purchase_seconds)))
        tap = EventTap(self.app.env["AMQP_URI"], {"orders": ["order:completed"]})
        lock = threading.Lock()
        placed: dict[str, float] = {}
        failures: dict[str, int] = {}
        stop_at = time.monotonic() + s.purchase_seconds

        def buyer(i: int):
            session = requests.Session()
            session.headers.update(self.auth(self.buyers[i % len(self.buyers)]))
            while time.monotonic() < stop_at:
                with lock:
                    if not pool:
                        return
                    ticket_id = pool.pop()
                began = time.time()
                order = session.post(f"{self.url}/api/orders", json={"ticketId": ticket_id}, timeout=30)
                if order.status_code != 201:
                    with lock:
                        failures[f"order {order.status_code}"] = failures.get(f"order {order.status_code}", 0) + 1
                    continue
                paid = session.post(f"{self.url}/api/payments", json={"orderId": order.json()["id"], "token": "tok_visa"},
                                    timeout=30)
                if paid.status_code != 201:
                    with lock:
                        failures[f"pay {paid.status_code}"] = failures.get(f"pay {paid.status_code}", 0) + 1
                    continue
                with lock:
                    placed[order.json()["id"]] = began

        self.sampler.mark("purchases (before)")
        began = time.time()
        threads = [threading.Thread(target=buyer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        window_end = time.time()
        try:
            wait_for(lambda: {p["id"] for _, _, p in tap.seen if p.get("id") in placed} >= set(placed),
                     timeout=30, what="every paid order completed", interval=0.1)
        except AssertionError:  # counted below as not completed
            pass
        self.sampler.mark("purchases")
        completed = {p["id"]: at for at, _, p in tap.seen if p.get("id") in placed}
        tap.close()
        in_window = [at for at in completed.values() if at <= window_end]
        latencies = sorted(completed[o] - placed[o] for o in completed)
        row = {"seconds": round(window_end - began, 2), "paid": len(placed), "completed": len(completed),
               "completed_per_s": round(len(in_window) / (window_end - began), 1), "failures": failures,
               "order_to_complete_p50_s": _round(crowd.percentile(latencies, 50)),
               "order_to_complete_p99_s": _round(crowd.percentile(latencies, 99))}
        say(f"  purchases: {row}")
        self.results["purchases"] = row

    def flash(self, name: str, buyers: int, tickets: int) -> None:
        s = self.sizes
        ticket_ids = self.tickets(tickets)
        host, port = urlparse(self.url).hostname, urlparse(self.url).port
        web_before = self.sampler.pids("web")
        idle = crowd.IdleConnections(host, port, s.idle)
        try:
            requests_ = [crowd.build_request(host, "POST", "/api/orders", {"ticketId": ticket_ids[i % tickets]},
                                             self.auth(self.buyers[i % len(self.buyers)])) for i in range(buyers)]
            self.sampler.mark(f"{name} (before)")
            outcomes = crowd.rush(host, port, requests_, timeout=30)
            self.sampler.mark(name)
            kept = idle.still_open()
        finally:
            idle.close()
        web_after = self.sampler.pids("web")
        row = crowd.summary(outcomes)
        wins: dict[str, int] = {}
        for i, outcome in enumerate(outcomes):
            if outcome.status == 201:
                wins[ticket_ids[i % tickets]] = wins.get(ticket_ids[i % tickets], 0) + 1
        busy = [o.seconds for o in outcomes if o.status in (503, 429)]
        row.update(buyers=buyers, tickets=tickets, idle_connections=len(idle.sockets) or s.idle,
                   idle_opened_errors=idle.errors, idle_still_answered=kept,
                   tickets_sold_once=sum(1 for n in wins.values() if n == 1),
                   tickets_sold_more_than_once=sum(1 for n in wins.values() if n > 1),
                   tickets_unsold=tickets - len(wins), busy_p99_s=_round(crowd.percentile(sorted(busy), 99)),
                   web_restarted=web_before != web_after, web_processes=len(web_after))
        say(f"  {name}: {row}")
        self.results.setdefault("flash", {})[name] = row

    def propagation(self) -> None:
        samples = []
        for _ in range(self.sizes.propagation_samples):
            ticket_id, created_at = self.create_ticket()
            wait_for(lambda: self.orderable(ticket_id), timeout=30, what="propagation", interval=0.01)
            samples.append(time.monotonic() - created_at)
        samples.sort()
        row = {"samples": len(samples), "p50_s": round(statistics.median(samples), 3),
               "p99_s": round(crowd.percentile(samples, 99), 3), "max_s": round(samples[-1], 3)}
        say(f"  propagation: {row}")
        self.results["propagation"] = row


# ---------------------------------------------------------------------- the verdicts
def verdicts(results: dict) -> list[tuple[str, str, str]]:
    """(target, measured, PASS/FAIL) for each target the run measured."""
    rows = []

    def check(name, measured, ok):
        rows.append((name, measured, "PASS" if ok else "FAIL"))

    reads = results.get("reads", {})
    if "floor c=32" in reads and "GET /api/tickets/:id c=32" in reads:
        floor, read = reads["floor c=32"], reads["GET /api/tickets/:id c=32"]
        ratio = read["rps"] / floor["rps"] if floor["rps"] else 0
        check(f"GET /api/tickets/:id c=32 >= {TARGETS['read_vs_floor']} x floor",
              f"{read['rps']:.0f} / {floor['rps']:.0f} req/s = {ratio:.2f} x", ratio >= TARGETS["read_vs_floor"])
        check(f"GET /api/tickets/:id c=32 p99 <= {TARGETS['read_p99_ms']} ms", f"{read['p99_ms']:.0f} ms",
              read["p99_ms"] <= TARGETS["read_p99_ms"])
    orders = results.get("writes", {}).get("POST /api/orders c=8")
    if orders:
        check(f"POST /api/orders c=8 >= {TARGETS['orders_rps']} req/s", f"{orders['rps']:.0f} req/s "
              f"({orders['statuses']})", orders["rps"] >= TARGETS["orders_rps"] and set(orders["statuses"]) == {"201"})
        check(f"POST /api/orders c=8 p99 <= {TARGETS['orders_p99_ms']} ms", f"{orders['p99_ms']:.0f} ms",
              orders["p99_ms"] <= TARGETS["orders_p99_ms"])
        drain = orders["drain_s"]
        check(f"POST /api/orders drained <= {TARGETS['orders_drain_s']} s after the load",
              "not drained" if drain is None else f"{drain:.2f} s", drain is not None and drain <= TARGETS["orders_drain_s"])
    purchases = results.get("purchases")
    if purchases:
        check(f"whole purchases >= {TARGETS['purchases_per_s']}/s", f"{purchases['completed_per_s']:.1f}/s",
              purchases["completed_per_s"] >= TARGETS["purchases_per_s"])
    for name, row in results.get("flash", {}).items():
        others = {k: v for k, v in row["statuses"].items() if k not in ("201", "409", "503", "429")}
        ok = (row["tickets_sold_once"] == row["tickets"] and not row["tickets_sold_more_than_once"]
              and not row["errors"] and not others and (row["p99_s"] or 0) <= TARGETS["flash_p99_s"]
              and not row["web_restarted"])
        check(f"flash {name}: one 201 per ticket, rest 409/503/429, no errors/500, p99 <= {TARGETS['flash_p99_s']} s, "
              "no restart",
              f"sold once {row['tickets_sold_once']}/{row['tickets']} (twice {row['tickets_sold_more_than_once']}, "
              f"unsold {row['tickets_unsold']}), {row['statuses']}, errors {row['errors']}, p99 {row['p99_s']:.2f} s, "
              f"restart {row['web_restarted']}", ok)
    expiry = results.get("expiry", {}).get("order:cancelled")
    if expiry:
        check(f"expiry lateness p99 <= {TARGETS['expiry_p99_s']} s, max <= {TARGETS['expiry_max_s']} s, none lost "
              f"({results['expiry']['orders']} orders)",
              f"p99 {expiry['p99_s']:.2f} s, max {expiry['max_s']:.2f} s, lost {expiry['lost']}",
              expiry["p99_s"] <= TARGETS["expiry_p99_s"] and expiry["max_s"] <= TARGETS["expiry_max_s"] and not expiry["lost"])
    for name, row in results.get("resources", {}).items():
        if name.startswith("floor") or name == "supervisor":
            continue
        check(f"{name} RSS <= {TARGETS['rss_mb']} MB (all its processes)",
              f"{row['peak_rss_sum_mb']:.0f} MB in {row['processes']} process(es), largest {row['peak_rss_mb']:.0f} MB",
              row["peak_rss_sum_mb"] <= TARGETS["rss_mb"])
    return rows


def table(results: dict) -> str:
    lines = ["", f"== make bench ({'quick' if results['quick'] else 'full'}) {results['started']} "
             f"on {results['machine']['cores']} cores, load average at start {results['machine']['loadavg']}; "
             f"{results.get('queue_type', 'classic')} queues on {results.get('broker', 'the machine')} broker", ""]
    lines.append(f"{'what':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'drain s':>8} {'CPU ms/req':>10}"
                 "  statuses / errors")
    for group in ("reads", "writes"):
        for name, row in results.get(group, {}).items():
            drain = row.get("drain_s")
            lines.append(f"{name:<34} {row['rps']:>8.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
                         f"{'-' if drain is None else drain:>8} {row.get('cpu_ms_per_request', '-'):>10}"
                         f"  {row['statuses']} {row['errors'] or ''}")
    if "purchases" in results:
        p = results["purchases"]
        lines.append(f"{'whole purchases (8 buyers)':<34} {p['completed_per_s']:>8.1f}  completed/s; {p['completed']} of "
                     f"{p['paid']} paid; order->complete p99 {p['order_to_complete_p99_s']} s; failures {p['failures']}")
    lines.append("")
    for name, row in results.get("flash", {}).items():
        lines.append(f"flash {name}: {row['statuses']} errors {row['errors']} p99 {row['p99_s']:.2f} s, "
                     f"503/429 p99 {row['busy_p99_s']} s; sold once {row['tickets_sold_once']}/{row['tickets']}, "
                     f"twice {row['tickets_sold_more_than_once']}; idle {row['idle_connections']} "
                     f"(still answered {row['idle_still_answered']}); web restarted: {row['web_restarted']}")
    if "propagation" in results:
        p = results["propagation"]
        lines.append(f"propagation (created -> orderable): p50 {p['p50_s']} s, p99 {p['p99_s']} s, max {p['max_s']} s")
    if "expiry" in results:
        e = results["expiry"]
        for key in ("expiration:complete", "order:cancelled"):
            if key in e:
                lines.append(f"expiry {e['orders']} orders, {key}: {e[key]}")
    lines += ["", f"{'component':<14} {'procs':>5} {'peak RSS MB':>12} {'sum MB':>8} {'CPU s':>8} {'CPU %':>7}"]
    for name, row in results.get("resources", {}).items():
        lines.append(f"{name:<14} {row['processes']:>5} {row['peak_rss_mb']:>12} {row['peak_rss_sum_mb']:>8} "
                     f"{row['cpu_s']:>8} {row['cpu_pct']:>7}")
    lines += ["", "targets:"]
    for name, measured, verdict in results.get("targets", []):
        lines.append(f"  [{verdict}] {name}: {measured}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small and short: checks the harness, not the targets")
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "bench.json"), help="where to write the figures")
    parser.add_argument("--no-expiry", action="store_true", help="skip the expiry run")
    parser.add_argument("--own-broker", action="store_true",
                        help="a one-node RabbitMQ of the bench's own instead of the machine's (quorum queues)")
    args = parser.parse_args(argv)
    raise_fd_limit()  # before a broker of our own starts: it inherits the limit
    with own_broker() if args.own_broker else machine_broker() as (rabbit, brokers):
        run(args, rabbit, brokers)


@contextmanager
def machine_broker():
    yield RabbitAdmin(), ("amqp://guest:guest@127.0.0.1:5672",)


@contextmanager
def own_broker():
    from tests.cluster.rabbit_cluster import LocalCluster

    say("starting a RabbitMQ node of the bench's own ...")
    with LocalCluster(size=1, prefix="ticketing-bench") as node:
        yield RabbitAdmin(node.nodes[0].management_url), tuple(node.amqp_uris)


def run(args, rabbit: RabbitAdmin, brokers: tuple[str, ...]) -> None:
    sizes = QUICK if args.quick else FULL
    wrk.ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="ticketing-bench-"))
    started = time.time()
    results: dict = {"quick": args.quick, "sizes": asdict(sizes), "targets_defined": TARGETS,
                     "started": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(started)),
                     "machine": {"cores": os.cpu_count(), "loadavg": os.getloadavg()[0]}, "workdir": str(workdir),
                     "queue_type": CommonSettings.load().queue_type,
                     "broker": "own node" if args.own_broker else "the machine's"}
    bench = Bench(sizes, workdir, rabbit, brokers)
    bench.results = results
    bench.start()
    try:
        bench.prepare()
        say("reads ...")
        bench.reads()
        say("writes ...")
        bench.writes()
        say("whole purchases ...")
        bench.purchases()
        say("flash sales ...")
        bench.flash(f"{sizes.flash_one[0]} buyers, 1 ticket", sizes.flash_one[0], 1)
        bench.flash(f"{sizes.flash_one[1]} buyers, 1 ticket", sizes.flash_one[1], 1)
        bench.flash(f"{sizes.flash_many[0]} buyers, {sizes.flash_many[1]} tickets", *sizes.flash_many)
        say("propagation ...")
        bench.propagation()
    finally:
        bench.stop()
    results["busy_answers"] = bench.busy_answers  # 503s retried while the harness made its tickets
    results["phase_cpu_s"] = phases = bench.sampler.phase_cpu()
    for group in ("reads", "writes"):  # CPU of the whole stack (wrk aside) per request
        for name, row in results.get(group, {}).items():
            if name in phases and row["requests"]:
                row["cpu_ms_per_request"] = round(1000 * sum(phases[name].values()) / row["requests"], 2)
    results["resources"] = bench.sampler.report(time.time() - started)
    if not args.no_expiry:
        from bench import expiry

        say(f"expiry: {sizes.expiry_orders} orders over {sizes.expiry_window[0]:.0f}-{sizes.expiry_window[1]:.0f} s ...")
        expiry_sampler = Sampler().start()
        began = time.time()
        results["expiry"] = expiry.run(sizes.expiry_orders, *sizes.expiry_window, sampler=expiry_sampler,
                                       say=lambda line: say(f"  {line}"), rabbit=rabbit, brokers=brokers)
        expiry_sampler.stop()
        results["expiry"]["resources"] = expiry_sampler.report(time.time() - began)
        for name, row in results["expiry"]["resources"].items():  # peak RSS over both apps
            mine = results["resources"].setdefault(name, dict(row))
            mine["peak_rss_mb"] = max(mine["peak_rss_mb"], row["peak_rss_mb"])
            mine["peak_rss_sum_mb"] = max(mine["peak_rss_sum_mb"], row["peak_rss_sum_mb"])
    results["seconds"] = round(time.time() - started, 1)
    results["targets"] = verdicts(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    say(table(results))
    say(f"\nJSON: {args.json}  (app logs: {workdir})")
