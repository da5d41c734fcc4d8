"""What must hold after any mix of faults, checked against the databases, the broker and the processor."""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ACTIVE = ("created", "awaiting:payment", "complete")
OUTBOXES = ("tickets", "orders", "payments")


@dataclass
class Row:
    name: str
    checked: int
    violations: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.violations == 0


def is_work_queue(name: str) -> bool:
    """Queues of messages some service still has to process: not the holding queues of delays (pending
    expiries and retries wait there by design), nor a client's reply queue (a late reply to a request
    its caller gave up on is read and ignored by that client's next call)."""
    return not name.startswith(("delay.", "rpc.reply-"))


def settled(cluster, grace: float) -> list[str]:
    """What still moves (empty when the system is at rest)."""
    busy = []
    outbox = sum(cluster.query(s, "SELECT count(*) FROM outbox")[0][0] for s in OUTBOXES)
    if outbox:
        busy.append(f"{outbox} outbox rows")
    unsettled = cluster.query("payments", "SELECT count(*) FROM charge_attempts WHERE state IN ('holding', 'pending')"
                              " OR (state IN ('declined', 'failed', 'dropped') AND released_at IS NULL)")[0][0]
    if unsettled:
        busy.append(f"{unsettled} charge attempts unsettled")
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace)
    overdue = cluster.query("orders", "SELECT count(*) FROM orders WHERE status IN ('created', 'awaiting:payment') "
                                      "AND expires_at < %s", cutoff)[0][0]
    if overdue:
        busy.append(f"{overdue} orders overdue")
    owed = cluster.query("payments", "SELECT count(*) FROM payments p JOIN cancelled_orders c USING (order_id) "
                                     "WHERE NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id)")[0][0]
    if owed:
        busy.append(f"{owed} refunds owed")
    backlog = {q: n for q, n in cluster.queues().items() if n and is_work_queue(q)}
    if backlog:
        busy.append(f"queues {backlog}")
    unsent = cluster.query("confirmation", "SELECT count(*) FROM sent_emails WHERE state <> 'sent'")[0][0]
    if unsent:
        busy.append(f"{unsent} emails unsent")
    return busy


def wait_until_settled(cluster, grace: float, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            busy = settled(cluster, grace)
        except Exception as exc:  # a database connection we terminated ourselves a moment ago
            busy = [repr(exc)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(1)


class OverdueWatch:
    """Looks at the orders table every ``interval`` seconds while the faults run: for each order
    seen created/awaiting:payment after its expiresAt, the last time it was seen so. A check at the
    end alone would miss a ticket stranded for a minute and released later (the run waits for the
    system to settle before it checks)."""

    def __init__(self, cluster, interval: float = 1.0):
        self.cluster, self.interval = cluster, interval
        self.overdue: dict[str, tuple[datetime, datetime]] = {}  # order id -> (expiresAt, last seen open)
        self.samples = 0
        self.longest_gap = 0.0  # between two samples: the machine (or this process) stood still that long
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        # taken before the query: the order was open at least until the snapshot, which is later
        now = datetime.now(timezone.utc)
        rows = self.cluster.query("orders", "SELECT id, expires_at FROM orders WHERE status IN "
                                            "('created', 'awaiting:payment') AND expires_at < %s", now)
        for order_id, expires_at in rows:
            self.overdue[order_id] = (expires_at, now)
        self.samples += 1

    def _run(self) -> None:
        last = time.time()  # the wall clock, as expiresAt is
        while not self._stop.wait(self.interval):
            now = time.time()
            self.longest_gap, last = max(self.longest_gap, now - last), now
            try:
                self.sample()
            except Exception:  # a database connection the faults terminated: next sample
                pass


def overlap(start: datetime, end: datetime, spans: list[tuple[datetime, datetime]]) -> float:
    """Seconds of [start, end] inside any of ``spans``."""
    return sum(max(0.0, (min(end, b) - max(start, a)).total_seconds()) for a, b in spans)


def check(cluster, workload, fake_stripe, window: float, grace: float,
          watch: OverdueWatch | None = None, outages: list[tuple[datetime, datetime]] = ()) -> list[Row]:
    rows: list[Row] = []
    orders = cluster.query("orders", "SELECT id, user_id, ticket_id, status, expires_at, price_cents FROM orders")
    by_id = {o[0]: o for o in orders}

    per_ticket = Counter(o[2] for o in orders if o[3] in ACTIVE)
    tickets_with_orders = {o[2] for o in orders}
    rows.append(Row("one active order per ticket", len(tickets_with_orders),
                    sum(1 for n in per_ticket.values() if n > 1)))

    payments = cluster.query("payments", "SELECT order_id, id, charge_id, amount_cents FROM payments")
    refunds = {r[0]: r for r in cluster.query("payments", "SELECT order_id, refund_id, amount_cents FROM refunds")}
    paid = {p[0]: p for p in payments}
    complete = [o for o in orders if o[3] == "complete"]
    wrong = [o[0] for o in complete if o[0] not in paid or o[0] in refunds or paid[o[0]][3] != o[5]]
    rows.append(Row("one payment per complete order, at its reserved price", len(complete), len(wrong),
                    ", ".join(wrong[:5])))
    others = [o for o in orders if o[3] != "complete"]
    kept = [o[0] for o in others if o[0] in paid and o[0] not in refunds]
    refunded = sum(1 for o in others if o[0] in refunds)
    rows.append(Row("no payment kept for an order not complete", len(others), len(kept),
                    f"{refunded} refunded automatically" + (": " + ", ".join(kept[:5]) if kept else "")))

    charges, gave_back = defaultdict(int), defaultdict(int)
    for charge in list(fake_stripe.charges):
        charges[charge["metadata"].get("order_id")] += 1
    by_charge = {c["id"]: c["metadata"].get("order_id") for c in fake_stripe.charges}
    for refund in list(fake_stripe.refunds):
        gave_back[by_charge.get(refund["charge"])] += 1
    net_wrong = [o[0] for o in orders
                 if charges[o[0]] - gave_back[o[0]] != (1 if o[3] == "complete" else 0) or charges[o[0]] > 1]
    rows.append(Row("processor: one charge per complete order, none kept for others", len(orders), len(net_wrong),
                    f"{sum(charges.values())} charges, {sum(gave_back.values())} refunds"))

    emails = {e[0]: e for e in cluster.query("confirmation", "SELECT order_id, sends, state FROM sent_emails")}
    bad_mail = [o[0] for o in complete if o[0] not in emails or emails[o[0]][1] != 1]
    bad_mail += [o[0] for o in others if o[0] in emails]
    rows.append(Row("one email per complete order, none for others", len(orders), len(bad_mail)))

    # Any time an order was seen open past its expiresAt, during the run (sampled) or now. A broker
    # outage stops what releases a hold (RPC) or completes an order (events): its seconds are allowed.
    now = datetime.now(timezone.utc)
    seen = dict(watch.overdue) if watch else {}
    seen.update({o[0]: (o[4], now) for o in orders if o[3] in ("created", "awaiting:payment") and o[4] < now})
    late = {order_id: (last - expires).total_seconds() - overlap(expires, last, list(outages))
            for order_id, (expires, last) in seen.items()}
    stuck = sorted((order_id for order_id, s in late.items() if s > grace), key=late.get, reverse=True)
    dropped = cluster.query("payments", "SELECT count(*) FROM charge_attempts WHERE state = 'dropped' "
                                        "AND released_at IS NOT NULL")[0][0]
    detail = f"longest {max(late.values()) if late else 0:.1f} s"
    if watch:
        detail += f" in {watch.samples} samples ({watch.longest_gap:.1f} s apart at most)"
    if outages:
        detail += " less broker outages"
    detail += f"; {dropped} charge attempts of payers that died before charging dropped, holds released"
    if stuck:
        detail += ": " + ", ".join(f"{o} {late[o]:.0f} s" for o in stuck[:3])
    rows.append(Row(f"no order created/awaiting:payment past expiresAt + {grace:.0f} s, ever", len(orders),
                    len(stuck), detail))

    tickets = cluster.query("tickets", "SELECT id, title, price_cents, user_id, order_id, sold_at, version FROM tickets")
    replica = {t[0]: t for t in cluster.query("orders", "SELECT id, title, price_cents, user_id, version FROM tickets")}
    active_of = {o[2]: o for o in orders if o[3] in ACTIVE}
    disagree = []
    for t in tickets:
        r, active = replica.get(t[0]), active_of.get(t[0])
        # the replica keeps title, price and seller as of the last version that changed one of them
        if r is None or (r[1], r[2], r[3]) != (t[1], t[2], t[3]) or r[4] > t[6]:
            disagree.append(f"{t[0]} replica {r and r[1:]} != {t[1:4] + (t[6],)}")
        elif (active[0] if active else None) != t[4]:
            disagree.append(f"{t[0]} held by {t[4]} but active order {active and active[0]}")
        elif (t[5] is not None) != (active is not None and active[3] == "complete"):
            disagree.append(f"{t[0]} sold={t[5] is not None} but order {active and active[3]}")
    rows.append(Row("ticket state and orders' replica agree", len(tickets), len(disagree), "; ".join(disagree[:3])))

    outbox = sum(cluster.query(s, "SELECT count(*) FROM outbox")[0][0] for s in OUTBOXES)
    queues = cluster.queues()
    parked = {q: n for q, n in queues.items() if q.endswith(".parked") and n}
    backlog = {q: n for q, n in queues.items() if n and is_work_queue(q) and not q.endswith(".parked")}
    stale_replies = sum(n for q, n in queues.items() if q.startswith("rpc.reply-"))
    rows.append(Row("outboxes empty", len(OUTBOXES), outbox))
    rows.append(Row("nothing parked", len([q for q in queues if not q.startswith("delay.")]), sum(parked.values()),
                    str(parked) if parked else ""))
    rows.append(Row("no backlog in service queues", len(queues), sum(backlog.values()),
                    str(backlog) if backlog else
                    f"{stale_replies} late replies wait for a gateway proxy that gave up" if stale_replies else ""))

    told, mismatched = 0, []
    for j in workload.journeys:
        for what, status, value in j.told:
            told += 1
            if what == "ticket" and not cluster.query("tickets", "SELECT 1 FROM tickets WHERE id = %s AND user_id = %s",
                                                      value, j.seller):
                mismatched.append(f"ticket {value} told 201, not in tickets")
            elif what == "order" and status == 201 and (value not in by_id or by_id[value][1] != j.buyer):
                mismatched.append(f"order {value} told 201, not the buyer's")
            elif what == "payment" and status == 201:
                if value not in {p[1] for p in payments} or by_id.get(j.order_id, (None,) * 4)[3] != "complete":
                    mismatched.append(f"payment {value} of {j.order_id} told 201, order "
                                      f"{by_id.get(j.order_id, (None,) * 4)[3]}")
            elif what == "payment" and status == 402 and j.payment_id is None and j.order_id in paid:
                mismatched.append(f"order {j.order_id} told 402 only, but paid")
            elif what == "cancel" and status == 204 and by_id.get(value, (None,) * 4)[3] != "cancelled":
                mismatched.append(f"order {value} told cancelled, is {by_id.get(value, (None,) * 4)[3]}")
            elif what in ("order", "rival-order") and status == 201 and value and by_id.get(value) is None:
                mismatched.append(f"order {value} told 201, missing")
    rows.append(Row("what each client was told matches the database", told, len(mismatched),
                    "; ".join(mismatched[:3])))

    errors = [j.error for j in workload.journeys if j.error]
    rows.append(Row("every journey got its answers (no client gave up)", len(workload.journeys), len(errors),
                    "; ".join(errors[:3])))
    requests_made = sum(v for k, v in workload.stats.items() if k.startswith("HTTP") or k == "connection error")
    rows.append(Row("zero 500s", requests_made, workload.stats.get("HTTP 500", 0),
                    "; ".join(workload.stats.get("500 bodies", [])[:2])))
    died = sum(p.died_by_itself for p in cluster.procs)
    rows.append(Row("no process died by itself", len(cluster.procs), died,
                    ", ".join(f"{p.label}x{p.died_by_itself}" for p in cluster.procs if p.died_by_itself)))
    return rows


def table(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'invariant':<{width}}  {'checked':>8}  {'violations':>10}  result",
             f"{'-' * width}  {'-' * 8}  {'-' * 10}  ------"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.checked:>8}  {r.violations:>10}  {'ok' if r.ok else 'FAIL'}"
                     + (f"  ({r.detail})" if r.detail else ""))
    return "\n".join(lines)
