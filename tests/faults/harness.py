"""The fault suite's machinery: a cluster of real processes, a cuttable broker link, a workload, faults.

* the broker link — a TCP proxy in a process of its own (:class:`tests.support.tcp_proxy.ProxyProcess`) in
  front of the machine's RabbitMQ. ``cut()``
  closes every connection through it and refuses new ones (the broker is gone,
  for the app); ``restore()`` lets them through again. The machine's RabbitMQ
  itself is never touched.
* :class:`Cluster` — every service twice (``ticketing run <service>``) plus two
  gateways, on a fresh vhost and fresh PostgreSQL databases, charging the fake
  Stripe (so the processor's own records can be checked). A process killed by a
  fault is started again by the harness, like a container's restart policy; one
  that exits by itself is counted (it must not happen).
* :class:`Workload` — buyers and sellers through the gateways' HTTP API, as a
  careful client behaves: 503 or a dropped connection -> try again (with the
  same Idempotency-Key), and it records every answer it got.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests

from services.common.net import free_port
from tests.support import live
from tests.support.tcp_proxy import ProxyProcess

ROOT = Path(__file__).parents[2]
SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
DATABASES = ("auth", "tickets", "orders", "payments", "confirmation")


# -- the cluster ------------------------------------------------------------------------

@dataclass
class Proc:
    name: str
    index: int
    env: dict
    log_path: Path
    ready_url: str
    process: subprocess.Popen | None = None
    killed_by_us: bool = False
    starts: int = 0
    died_by_itself: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def label(self) -> str:
        return f"{self.name}-{self.index}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ticketing.cli", "run", self.name], cwd=ROOT, env=self.env,
            stdout=self.log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        self.killed_by_us = False
        self.starts += 1

    def send_signal(self, sig: int, *, killing: bool = False) -> None:
        """Send ``sig`` to its process group if it runs; under the lock, so the watcher cannot start
        it again behind our back, and it knows a death was ours (``killing``)."""
        with self.lock:
            if self.process and self.process.poll() is None:
                self.killed_by_us = self.killed_by_us or killing
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL, killing=True)

    def ready(self) -> bool:
        try:
            return requests.get(self.ready_url, timeout=1).status_code == 200
        except requests.RequestException:
            return False


class Cluster:
    def __init__(self, workdir: Path, rabbit_admin, postgres_admin, run_id: str, stripe_url: str, settings: dict):
        self.workdir, self.rabbit_admin, self.postgres_admin = workdir, rabbit_admin, postgres_admin
        self.vhost = f"ticketing-faults-{run_id}-{uuid.uuid4().hex[:6]}"
        rabbit_admin.create_vhost(self.vhost)
        self.link = ProxyProcess(free_port())  # to the machine's RabbitMQ
        label = uuid.uuid4().hex[:6]
        self.database_urls = {name: postgres_admin.create_database(f"f{label}_{name}") for name in DATABASES}
        self.database_names = [url.rsplit("/", 1)[1] for url in self.database_urls.values()]
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_DATABASE_URL") and k not in live.OUTSIDE_SERVICES}
        env.update({
            "AMQP_URI": f"amqp://guest:guest@127.0.0.1:{self.link.port}/{quote(self.vhost, safe='')}",
            # the suite's key pair (tests/conftest.py): auth signs with it, the gateways verify
            "JWT_PRIVATE_KEY": os.environ["JWT_PRIVATE_KEY"], "JWT_PUBLIC_KEY": os.environ["JWT_PUBLIC_KEY"],
            "PYTHONUNBUFFERED": "1", "HEALTH_HOST": "127.0.0.1",
            "VAR_DIR": str(workdir / "var"), "MAIL_OUTBOX_DIR": str(workdir / "mail"),
            "STRIPE_KEY": "sk_test_faults", "STRIPE_API_BASE": stripe_url, "LOG_LEVEL": "INFO",
            **{f"{name.upper()}_DATABASE_URL": url for name, url in self.database_urls.items()},
            **{k: str(v) for k, v in settings.items()},
        })
        self.env = env
        self.procs: list[Proc] = []
        for name in SERVICES:
            for index in (1, 2):
                port = free_port()
                self.procs.append(Proc(name, index, {**env, "HEALTH_PORT": str(port)},
                                       workdir / f"{name}-{index}.log", f"http://127.0.0.1:{port}/readyz"))
        self.gateway_urls = []
        for index in (1, 2):
            port = free_port()
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
            self.procs.append(Proc("gateway", index, {**env, "PORT": str(port), "HOST": "127.0.0.1"},
                                   workdir / f"gateway-{index}.log", f"http://127.0.0.1:{port}/api/healthz"))
        self._watching = False

    def start(self, timeout: float = 150) -> None:
        for proc in self.procs:
            proc.start()
        deadline = time.monotonic() + timeout
        waiting = list(self.procs)
        while waiting:
            for proc in list(waiting):
                if proc.process.poll() is not None:
                    raise RuntimeError(f"{proc.label} exited at start:\n{proc.log_path.read_text()[-3000:]}")
                if proc.ready():
                    waiting.remove(proc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready in {timeout}s: {[p.label for p in waiting]}")
            time.sleep(0.3)
        self._watching = True
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        """Restart what a fault killed (a container's restart policy); count what died by itself."""
        while self._watching:
            for proc in self.procs:
                try:
                    with proc.lock:
                        if proc.process is not None and proc.process.poll() is not None and self._watching:
                            if not proc.killed_by_us:
                                proc.died_by_itself += 1
                            proc.start()
                except Exception as exc:  # keep watching the others
                    print(f"watcher: could not restart {proc.label}: {exc!r}", file=sys.stderr)
            time.sleep(0.5)

    def of(self, name: str) -> list[Proc]:
        return [p for p in self.procs if p.name == name]

    def kill(self, name: str, which: int | None = None) -> list[str]:
        targets = self.of(name) if which is None else [self.of(name)[which]]
        for proc in targets:
            proc.kill()
        return [p.label for p in targets]

    def wait_ready(self, name: str, timeout: float = 60) -> bool:
        """Until every process of ``name`` answers its readiness check (False: not in ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not all(proc.ready() for proc in self.of(name)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
        return True

    def pause(self, procs: list[Proc]) -> None:
        """SIGSTOP: alive (connections open, nothing answered) until :meth:`resume`."""
        for proc in procs:
            proc.send_signal(signal.SIGSTOP)

    def resume(self, procs: list[Proc]) -> None:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)

    def terminate_database_connections(self) -> int:
        with psycopg.connect(self.postgres_admin.admin_url, autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                                (self.database_names,)).fetchall()
        return len(rows)

    def query(self, service: str, sql: str, *params) -> list[tuple]:
        url = self.database_urls[service].replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url) as conn:
            return conn.execute(sql, params).fetchall()

    def queues(self) -> dict[str, int]:
        return self.rabbit_admin.queues(self.vhost)

    def stop(self) -> None:
        self._watching = False
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.process.pid, signal.SIGKILL)
                proc.process.wait(timeout=10)
        self.link.close()
        self.rabbit_admin.delete_vhost(self.vhost)

    def logs_with(self, needle: str) -> list[str]:
        found = []
        for proc in self.procs:
            for line in proc.log_path.read_text(errors="replace").splitlines():
                if needle in line:
                    found.append(f"{proc.label}: {line}")
        return found


# -- the workload -----------------------------------------------------------------------

@dataclass
class Journey:
    """One sale as a careful client lives it; ``told`` is every final answer it was given."""

    n: int
    plan: str
    seller: str = ""
    buyer: str = ""
    ticket_id: str | None = None
    order_id: str | None = None
    payment_id: str | None = None
    declined: bool = False
    cancelled: bool = False
    lost_race: bool = False
    error: str | None = None
    told: list = field(default_factory=list)


class GaveUp(Exception):
    pass


class Client:
    """An HTTP client of the gateways that retries what the API says may be retried."""

    def __init__(self, urls: list[str], stats: dict, patience: float = 90.0):
        self.urls, self.stats, self.patience = urls, stats, patience
        self.http = requests.Session()
        self.user_id = None

    def call(self, method: str, path: str, body=None, key: str | None = None, retry_409=False,
             once=False) -> requests.Response | None:
        """The final answer; with ``once``, the first answer (None: no answer) as a client that gives up."""
        deadline = time.monotonic() + self.patience
        attempt = 0
        while True:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            headers = {"Idempotency-Key": key} if key else {}
            try:
                response = self.http.request(method, url + path, json=body, headers=headers, timeout=10)
            except requests.RequestException:
                self._count("connection error")
                response = None
            if response is not None:
                self._count(response.status_code)
                if response.status_code == 500:
                    self.stats.setdefault("500 bodies", []).append(f"{method} {path}: {response.text[:300]}")
                if response.status_code not in (502, 503, 504) and not (retry_409 and response.status_code == 409):
                    return response
            if once:
                return response
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {path}: still unavailable after {self.patience}s")
            time.sleep(0.5 if response is None else min(2.0, float(response.headers.get("Retry-After", 1))))

    def _count(self, status) -> None:
        key = f"HTTP {status}" if isinstance(status, int) else status
        self.stats[key] = self.stats.get(key, 0) + 1

    def signup(self, email: str) -> None:
        response = self.call("POST", "/api/users/signup", {"email": email, "password": "secret-pass"})
        if response.status_code == 400 and "in use" in response.text:  # a retried signup that had worked
            response = self.call("POST", "/api/users/signin", {"email": email, "password": "secret-pass"})
        assert response.status_code in (200, 201), response.text
        self.user_id = response.json()["id"]


class Workload:
    #: pay-once: a buyer who sends the payment once and leaves whatever the answer (a 503, no answer)
    PLANS = ("pay", "pay", "pay", "pay-once", "decline-then-pay", "never-pay", "cancel", "race")

    def __init__(self, cluster: Cluster, journeys: int, concurrency: int, seed: int = 7):
        self.cluster, self.minimum, self.concurrency = cluster, journeys, concurrency
        self.random = random.Random(seed)
        self.stats: dict = {}
        self.journeys: list[Journey] = []
        self.lock = threading.Lock()

    def client(self, n: int) -> Client:
        urls = self.cluster.gateway_urls[n % 2:] + self.cluster.gateway_urls[:n % 2]
        return Client(urls, self.stats)

    def run(self, keep_going: threading.Event) -> None:
        """At least ``journeys`` sales, and more for as long as ``keep_going`` is set (faults under way)."""

        def next_journey():
            with self.lock:
                if len(self.journeys) >= self.minimum and not keep_going.is_set():
                    return None
                journey = Journey(len(self.journeys), self.random.choice(self.PLANS))
                self.journeys.append(journey)
                return journey

        def worker():
            while (journey := next_journey()) is not None:
                try:
                    self.live(journey)
                except Exception as exc:  # recorded; the invariant table counts them
                    journey.error = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def live(self, j: Journey) -> None:
        buyer = self.reserve_ticket(j)
        if j.order_id is None:
            return
        if j.plan == "never-pay":
            return
        if j.plan == "cancel":
            response = buyer.call("DELETE", f"/api/orders/{j.order_id}")
            assert response.status_code in (204, 409), response.text
            j.cancelled = response.status_code == 204
            j.told.append(("cancel", response.status_code, j.order_id))
            return
        if j.plan == "decline-then-pay":
            response = buyer.call("POST", "/api/payments", {"token": "tok_chargeDeclined", "orderId": j.order_id},
                                  key=uuid.uuid4().hex)
            j.told.append(("payment", response.status_code, None))
            if response.status_code == 402:
                j.declined = True
        if j.plan == "pay-once":
            self.pay_once(j, buyer)
            return
        key = uuid.uuid4().hex
        response = buyer.call("POST", "/api/payments", {"token": "tok_visa", "orderId": j.order_id}, key=key,
                              retry_409=False)
        if response.status_code == 409 and "being paid" in response.text:
            # our own earlier try is still settling: ask again with the same key, a little later
            deadline = time.monotonic() + 60
            while response.status_code == 409 and "being paid" in response.text and time.monotonic() < deadline:
                time.sleep(1)
                response = buyer.call("POST", "/api/payments", {"token": "tok_visa", "orderId": j.order_id}, key=key)
        j.told.append(("payment", response.status_code, response.json().get("id") if response.status_code == 201
                       else response.text[:200]))
        if response.status_code == 201:
            j.payment_id = response.json()["id"]

    def pay_once(self, j: Journey, buyer: Client) -> None:
        """A buyer who sends the payment once and leaves, whatever the answer (a 503, none at all)."""
        response = buyer.call("POST", "/api/payments", {"token": "tok_visa", "orderId": j.order_id},
                              key=uuid.uuid4().hex, once=True)
        status = response.status_code if response is not None else "no answer"
        j.told.append(("payment", status, response.json().get("id") if status == 201 else None))
        if status == 201:
            j.payment_id = response.json()["id"]

    def reserved_orders(self, n: int) -> list[tuple[Journey, Client]]:
        """``n`` journeys taken as far as an order (for a fault to pay them); their buyers."""
        ready = []

        def one():
            with self.lock:
                journey = Journey(len(self.journeys), "pay-once")
                self.journeys.append(journey)
            try:
                buyer = self.reserve_ticket(journey)
            except Exception as exc:  # recorded; the invariant table counts them
                journey.error = f"{type(exc).__name__}: {exc}"
                return
            if journey.order_id is not None:
                ready.append((journey, buyer))

        threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ready

    def reserve_ticket(self, j: Journey) -> Client:
        """A seller lists a ticket, the buyer orders it (``j.order_id``); the buyer's client."""
        run = uuid.uuid4().hex[:8]
        seller, buyer = self.client(j.n), self.client(j.n + 1)
        seller.signup(f"seller-{run}-{j.n}@example.com")
        buyer.signup(f"buyer-{run}-{j.n}@example.com")
        j.seller, j.buyer = seller.user_id, buyer.user_id
        response = seller.call("POST", "/api/tickets", {"title": f"Show {j.n}", "price": 10 + j.n % 50},
                               key=uuid.uuid4().hex)
        assert response.status_code == 201, response.text
        j.ticket_id = response.json()["id"]
        j.told.append(("ticket", 201, j.ticket_id))

        rival = None
        if j.plan == "race":
            rival = self.client(j.n + 2)
            rival.signup(f"rival-{run}-{j.n}@example.com")
        j.order_id = self.reserve(j, buyer, rival)
        return buyer

    def reserve(self, j: Journey, buyer: Client, rival: Client | None) -> str | None:
        """Order the ticket (the orders service learns of it by event: 404 until then)."""
        deadline = time.monotonic() + 60
        while True:
            if rival is not None:
                results = {}

                def race(name, client):
                    results[name] = client.call("POST", "/api/orders", {"ticketId": j.ticket_id})

                threads = [threading.Thread(target=race, args=(name, c)) for name, c in (("b", buyer), ("r", rival))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                response, other = results["b"], results["r"]
            else:
                response, other = buyer.call("POST", "/api/orders", {"ticketId": j.ticket_id}), None
            statuses = {response.status_code, other.status_code if other is not None else None}
            if 404 in statuses and 201 not in statuses and time.monotonic() < deadline:
                time.sleep(0.3)
                continue
            break
        if other is not None:
            j.told.append(("rival-order", other.status_code, other.json().get("id") if other.status_code == 201
                           else None))
            if other.status_code == 201:
                j.lost_race = True
        j.told.append(("order", response.status_code, response.json().get("id") if response.status_code == 201
                       else None))
        if response.status_code == 409 and other is None:
            # a retried create whose first try had worked: our own order holds the ticket
            mine = [o for o in buyer.call("GET", "/api/orders").json() if o["ticket"]["id"] == j.ticket_id]
            if mine:
                j.told[-1] = ("order", 201, mine[-1]["id"])
                return mine[-1]["id"]
        return response.json()["id"] if response.status_code == 201 else None


def dump(path: Path, workload: Workload) -> None:
    path.write_text(json.dumps([j.__dict__ for j in workload.journeys], indent=1, default=str))
