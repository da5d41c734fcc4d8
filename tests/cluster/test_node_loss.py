"""A RabbitMQ node lost and back under the purchase workload: nothing expires late by more than the outage,
nothing is lost, charged twice, emailed twice or parked.

Three RabbitMQ nodes on this machine (:mod:`tests.cluster.rabbit_cluster`), the
app as ``ticketing up --replicas 2`` (every service twice) with
``QUEUE_TYPE=quorum`` and ``AMQP_URI`` listing the three nodes, the fake Stripe
and SendGrid recording every charge and email. Buyers keep ordering tickets,
paying for half of them and leaving the other half to expire, while node 1 —
the one every process connected to first, and the leader of the queues they
declared — is stopped and started again. Clients retry what fails during the
failover (503 or a dropped connection), as a browser's user would. A request
can also run twice without the client retrying: RabbitMQ redelivers an RPC
whose worker lost its broker connection to another replica. A 409 for the
buyer's own order or payment is then recognised by looking the order up, as
the buyer would on their orders page.

Every cancellation is counted by where it came from: an expiry message that
went through the quorum holding queues (its ``expiration:complete`` was seen),
or the orders safety net, which cancels a ``created`` order
``ORDERS_EXPIRY_GRACE_SECONDS`` past its expiresAt when that message never
came (RabbitMQ 3.10.8 loses the message a holding queue is dead-lettering when
its leader's node is being stopped; README, "Running on a RabbitMQ cluster").

Run with ``make cluster-test``; it prints the invariant counts (and writes
them to ``artifacts/cluster-test.txt``).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.cluster.rabbit_cluster import LocalCluster
from services.common.net import free_port
from tests.conftest import RUN_ID
from tests.e2e.orders_support import EventTap
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.fake_stripe import FakeStripe
from tests.support.live import LiveApp
from tests.support.rabbit import RabbitAdmin
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(1200)

WINDOW = 20            # seconds an order holds its ticket: expiries of orders placed before the stop fall in the outage
BEFORE_STOP = 10       # seconds of workload before node 1 is stopped
DOWN = 10              # seconds node 1 stays down
AFTER_START = 10       # seconds of workload after it is back
BUYERS = 3             # concurrent buyers (each with a seller)
RETRY_FOR = 120        # seconds a client keeps retrying one step through the failover
GRACE = 10             # ORDERS_EXPIRY_GRACE_SECONDS (its default): the safety net's lateness
SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
REPORT = ARTIFACTS / "cluster-test.txt"
APP_LOG = ARTIFACTS / "cluster-test-app.log"


def expires_at(order: dict) -> float:
    return datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00")).timestamp()


class Client:
    """One browser: a cookie jar, retrying what the failover breaks."""

    def __init__(self, url: str, label: str, stats: Counter):
        self.url, self.http, self.stats = url, requests.Session(), stats
        self.email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
        self.call("post", "/api/users/signup", {"email": self.email, "password": "secret-password"}, ok=(201,))

    def call(self, method: str, path: str, body=None, ok=(200, 201)) -> requests.Response:
        """Retries 503s and dropped connections; returns the first answer in ``ok``."""
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                response = self.http.request(method, self.url + path, json=body, timeout=30)
                if response.status_code in ok:
                    return response
                if response.status_code not in (503, 502, 504):
                    raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
                self.stats[f"{response.status_code} retried"] += 1
            except requests.ConnectionError:
                self.stats["connection errors retried"] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} still failing after {RETRY_FOR}s")
            time.sleep(0.5)


class Workload:
    """Buyers buying tickets of their sellers in a loop, paying every other order."""

    def __init__(self, url: str):
        self.url = url
        self.orders: list[dict] = []  # {order, ticket, buyer, intent, placed_at, paid}
        self.stats: Counter = Counter()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self, n: int) -> None:
        try:
            seller, buyer = Client(self.url, f"seller{n}", self.stats), Client(self.url, f"buyer{n}", self.stats)
            i = 0
            while not self.stopping.is_set():
                self.purchase(seller, buyer, intent="pay" if i % 2 == 0 else "expire")
                i += 1
        except Exception as exc:  # reported by the test, with the others
            self.errors.append(f"buyer {n}: {exc!r}")

    def purchase(self, seller: Client, buyer: Client, intent: str) -> None:
        ticket = seller.call("post", "/api/tickets", {"title": "Cluster night", "price": 12.5}, ok=(201,)).json()
        order = self.place(buyer, ticket)
        entry = {"order": order, "ticket": ticket, "buyer": buyer, "intent": intent,
                 "placed_at": time.time(), "paid": None}
        with self.lock:
            self.orders.append(entry)
        if intent == "pay":
            response = buyer.call("post", "/api/payments", {"token": "tok_visa", "orderId": order["id"]}, ok=(201, 409))
            if response.status_code == 409:  # an earlier attempt (ours, run again or retried) paid or holds it
                self.stats["409 on paying: settled by an earlier attempt"] += 1
            entry["paid"] = response.status_code == 201 or self.status(buyer, order["id"]) != "cancelled"

    def place(self, buyer: Client, ticket: dict) -> dict:
        deadline = time.monotonic() + RETRY_FOR
        while True:
            # 404: the orders service has not heard of the new ticket yet; 409: our own earlier try won
            response = buyer.call("post", "/api/orders", {"ticketId": ticket["id"]}, ok=(201, 404, 409))
            if response.status_code == 201:
                return response.json()
            if response.status_code == 409:
                mine = [o for o in buyer.call("get", "/api/orders").json() if o["ticket"]["id"] == ticket["id"]]
                assert len(mine) == 1, f"409 {response.text} and the buyer's orders of the ticket: {mine}"
                self.stats["409 on ordering: the buyer's own earlier attempt"] += 1
                return mine[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"ticket {ticket['id']} never reached the orders service")
            time.sleep(0.1)

    @staticmethod
    def status(buyer: Client, order_id: str) -> str:
        return buyer.call("get", f"/api/orders/{order_id}").json()["status"]


@pytest.fixture(scope="module")
def fakes():
    stripe, sendgrid = FakeStripe(), FakeSendGrid()
    yield stripe, sendgrid
    stripe.stop()
    sendgrid.stop()


def test_a_node_stopped_and_started_under_load_loses_nothing(postgres_admin, tmp_path, fakes):
    stripe, sendgrid = fakes
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalCluster(size=3) as cluster:
        say(f"cluster: {', '.join(n.name for n in cluster.nodes)} up in {time.monotonic() - started:.0f}s")
        survivor = cluster.nodes[2]
        admin = RabbitAdmin(survivor.management_url)
        app = LiveApp.start(
            admin, postgres_admin, tmp_path, port=free_port(), run_id=RUN_ID, brokers=tuple(cluster.amqp_uris),
            args=("--replicas", "2"), start_timeout=300, log_path=APP_LOG,
            env={"QUEUE_TYPE": "quorum", "EXPIRATION_WINDOW_SECONDS": str(WINDOW),
                 "ORDERS_EXPIRY_GRACE_SECONDS": str(GRACE),
                 "STRIPE_KEY": "sk_test_cluster", "STRIPE_API_BASE": stripe.url,
                 "SENDGRID_API_KEY": "SG.cluster-test", "SENDGRID_HOST": sendgrid.url,
                 "LOG_LEVEL": "WARNING"})
        try:
            replicas = {name: len(app.component_pids(name)) for name in SERVICES}
            say(f"app: ticketing up --replicas 2, QUEUE_TYPE=quorum, AMQP_URI lists 3 nodes; "
                f"processes per service: {replicas}")
            assert set(replicas.values()) == {2}, replicas
            vhost = app.vhost
            tap = EventTap(f"{survivor.amqp_uri}/{requests.utils.quote(vhost, safe='')}",
                           {"orders": ["order:cancelled", "order:completed"], "expiration": ["expiration:complete"]})
            try:
                workload = Workload(app.url)
                threads = [threading.Thread(target=workload.run, args=(n,), daemon=True) for n in range(BUYERS)]
                t0 = time.monotonic()
                for thread in threads:
                    thread.start()
                time.sleep(BEFORE_STOP)
                stop_at = time.time()
                placed_before_stop = len(workload.orders)
                cluster.stop_node(0)
                stopped_in = time.time() - stop_at
                say(f"t={time.monotonic() - t0:.0f}s: stopped {cluster.nodes[0].name} in {stopped_in:.1f}s "
                    f"({placed_before_stop} orders placed before; running now: "
                    f"{', '.join(cluster.running_nodes(survivor))})")
                time.sleep(DOWN)
                start_at = time.time()
                cluster.start_node(0)
                say(f"t={time.monotonic() - t0:.0f}s: started it again in {time.time() - start_at:.1f}s "
                    f"({len(workload.orders)} orders placed so far)")
                time.sleep(AFTER_START)
                workload.stopping.set()
                for thread in threads:
                    thread.join(timeout=RETRY_FOR * 3)
                assert not workload.errors, workload.errors
                orders = workload.orders
                say(f"t={time.monotonic() - t0:.0f}s: workload stopped: {len(orders)} orders placed; "
                    f"client retries: {dict(workload.stats) or 'none'}")

                # every order settles: paid ones complete, the others expire
                buyers = {id(e["buyer"]): e["buyer"] for e in orders}.values()

                def statuses() -> dict[str, str]:
                    return {o["id"]: o["status"] for b in buyers for o in b.call("get", "/api/orders").json()}

                last_due = max(expires_at(e["order"]) for e in orders)
                try:
                    wait_for(lambda: all(statuses().get(e["order"]["id"]) in ("complete", "cancelled") for e in orders),
                             timeout=max(0, last_due - time.time()) + 60, interval=1, what="every order settled")
                except AssertionError:
                    now, current = time.time(), statuses()
                    say(f"NOT SETTLED: {Counter((e['intent'], current.get(e['order']['id'])) for e in orders)}")
                    for e in orders:
                        if current.get(e["order"]["id"]) not in ("complete", "cancelled"):
                            say(f"  {e['intent']} {e['order']['id']} {current.get(e['order']['id'])} "
                                f"due {now - expires_at(e['order']):.0f}s ago, placed {now - e['placed_at']:.0f}s ago, "
                                f"expiry event seen: {e['order']['id'] in {p['id'] for _, p in tap.events('order:cancelled')}}")
                    for q in admin.queue_list(vhost):
                        if q.get("messages") or q["name"].startswith(("expiration", "delay", "evt-orders-order:created")):
                            say(f"  queue {q['name']}: {q.get('messages_ready')} ready, "
                                f"{q.get('messages_unacknowledged')} unacked, {q.get('consumers')} consumers, "
                                f"leader {q.get('leader') or q.get('node')}")
                    raise
                final = statuses()
            finally:
                tap.close()

            to_expire = [e for e in orders if e["intent"] == "expire"]
            pending_at_stop = [e for e in to_expire if e["placed_at"] < stop_at < expires_at(e["order"])]
            due_during_outage = [e for e in to_expire if stop_at <= expires_at(e["order"]) <= start_at + 15]
            cancelled_events = {p["id"]: at for at, p in tap.events("order:cancelled")}
            fired = [e for e in to_expire if final[e["order"]["id"]] == "cancelled" and e["order"]["id"] in cancelled_events]
            lateness = [cancelled_events[e["order"]["id"]] - expires_at(e["order"]) for e in fired]
            early = [late for late in lateness if late < -0.05]
            # an expiry message that arrived after the safety net had cancelled its order does not count for it
            completed = {}
            for at, payload in tap.events("expiration:complete"):
                completed.setdefault(payload["orderId"], at)
            by_message = [e for e in fired if completed.get(e["order"]["id"], float("inf"))
                          <= cancelled_events[e["order"]["id"]] + 0.5]
            by_net = [e for e in fired if e not in by_message]
            net_lateness = [cancelled_events[e["order"]["id"]] - expires_at(e["order"]) for e in by_net]
            say(f"pending expiries fired: {len(fired)}/{len(to_expire)} "
                f"({len(pending_at_stop)} were pending when the node stopped, {len(due_during_outage)} fell due "
                f"while it was down or rejoining); none early: {not early}; lateness max {max(lateness):.1f}s, "
                f"median {sorted(lateness)[len(lateness) // 2]:.2f}s; by their expiry message: {len(by_message)}, "
                f"by the orders safety net (message lost by the broker): {len(by_net)}"
                + (f", {min(net_lateness):.1f}-{max(net_lateness):.1f}s late" if net_lateness else ""))

            paid = [e for e in orders if e["intent"] == "pay"]
            complete = [e for e in paid if final[e["order"]["id"]] == "complete"]
            emails = Counter(m.get("custom_args", {}).get("order_id") for m in sendgrid.mails)
            one_email = [e for e in complete if emails[e["order"]["id"]] == 1]
            one_charge = [e for e in complete if len(stripe.charges_for(e["order"]["id"])) == 1]
            say(f"paid orders completed: {len(complete)}/{len(paid)}, with exactly one email: {len(one_email)}, "
                f"charged exactly once: {len(one_charge)}; emails sent in all: {sum(emails.values())}, "
                f"charges in all: {len(stripe.charges)}")

            # nothing lost: each ticket agrees with its order (the events between the services all arrived)
            def ticket_agrees(e):
                ticket = e["buyer"].call("get", f"/api/tickets/{e['ticket']['id']}").json()
                return ticket["orderId"] == (e["order"]["id"] if final[e["order"]["id"]] == "complete" else None)

            wait_for(lambda: all(ticket_agrees(e) for e in orders), timeout=30, interval=1, what="tickets agree")
            agreeing = [e for e in orders if ticket_agrees(e)]

            # RPC reply queues are left out: a reply to a request that ran twice (redelivered) or that its caller
            # gave up on stays there, unread, until the queue expires; no order, payment or email depends on it
            def leftovers():
                queues = admin.queue_list(vhost)
                business = [q for q in queues if not q["name"].startswith("rpc.reply-")]
                return queues if sum(q.get("messages", 0) for q in business) == 0 else None

            try:
                queues = wait_for(leftovers, timeout=60, interval=2, what="every queue drained")  # stats lag
            except AssertionError:
                say(f"NOT DRAINED: {[(q['name'], q.get('messages')) for q in admin.queue_list(vhost) if q.get('messages')]}")
                raise
            parked = [q["name"] for q in queues if q["name"].endswith(".parked")]
            durable = [q for q in queues if q["durable"]]
            replies = sum(q.get("messages", 0) for q in queues if q["name"].startswith("rpc.reply-"))
            say(f"tickets agreeing with their order: {len(agreeing)}/{len(orders)}; parked messages: 0 "
                f"({len(parked)} parked queues, all empty); messages left in the other "
                f"{len(queues) - sum(q['name'].startswith('rpc.reply-') for q in queues)} queues: 0 "
                f"(unread stale RPC replies: {replies}); durable queues that are quorum: "
                f"{sum(q['type'] == 'quorum' for q in durable)}/{len(durable)}")

            assert len(fired) == len(to_expire) and not early
            assert len(complete) == len(one_email) == len(one_charge) == len(paid)
            assert all(e["paid"] for e in paid)
            assert sum(emails.values()) == len(complete) and len(stripe.charges) == len(complete)
            assert all(d["type"] == "quorum" for d in durable)
            assert pending_at_stop and due_during_outage, "the timeline must put expiries across the outage"
        finally:
            app.stop()
    say(f"cluster removed; whole run {time.monotonic() - started:.0f}s")
    REPORT.write_text("\n".join(lines) + "\n")
