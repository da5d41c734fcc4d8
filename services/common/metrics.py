"""Prometheus metrics: what every component counts, served at ``/metrics`` on its health port.

One registry per process (prometheus-client's default). Names and labels are
the contract the Grafana dashboard (``deploy/grafana/ticketing.json``) relies
on; ``tests/unit/common/test_metrics.py`` checks that every metric the
dashboard queries is defined here.
"""
from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

#: seconds; fine at the low end where a healthy RPC lives (~2 ms), up to the RPC timeout
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUEST_SECONDS = Histogram(
    "ticketing_http_request_duration_seconds", "HTTP requests served by the gateway and the frontend",
    ["component", "method", "route", "status"], buckets=LATENCY_BUCKETS)
RPC_SECONDS = Histogram(
    "ticketing_rpc_duration_seconds", "RPCs served, by service and method; outcome ok, refused (4xx) or error",
    ["service", "method", "outcome"], buckets=LATENCY_BUCKETS)
EVENTS_PUBLISHED = Counter(
    "ticketing_events_published_total", "Events published (after commit or by the outbox relay)",
    ["service", "event"])
EVENTS_CONSUMED = Counter(
    "ticketing_events_consumed_total", "Events handled, by consumer service; outcome ok or failed",
    ["service", "event", "outcome"])
EVENT_RETRIES = Counter(
    "ticketing_event_retries_total", "Failed event deliveries sent back for another try", ["queue"])
EVENTS_PARKED = Counter(
    "ticketing_events_parked_total", "Event deliveries parked in <queue>.parked after the last try", ["queue"])
ORDERS = Gauge(
    "ticketing_orders", "Orders by status (read from the orders database at scrape time)", ["status"])
ORDER_TRANSITIONS = Counter(
    "ticketing_order_transitions_total", "Orders moved to a status (cancelled with its reason)",
    ["status", "reason"])
PENDING_EXPIRATIONS = Gauge(
    "ticketing_pending_expirations",
    "Messages waiting in the delay.* holding queues and expiration.due (read from the broker at scrape time)",
    ["queue_kind"])
QUEUE_MESSAGES = Gauge(
    "ticketing_queue_messages", "Messages in queues that matter to operators (parked, due)", ["queue"])
PAYMENTS = Counter(
    "ticketing_payments_total", "Payment attempts by outcome (paid, declined, refused, unknown, failed)",
    ["outcome"])
EMAILS = Counter(
    "ticketing_emails_total", "Confirmation emails by outcome (sent, failed)", ["outcome"])


def exposition() -> tuple[bytes, str]:
    """The body and content type of a ``/metrics`` answer.

    Under gunicorn (several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` set) the answer
    adds up what every worker wrote; otherwise it is this process's registry."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget a dead gunicorn worker's live gauges (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


def names() -> set[str]:
    """Every sample name this process can expose (histogram/counter suffixes included)."""
    found = set()
    for metric in REGISTRY.collect():
        found.add(metric.name)
        for sample in metric.samples:
            found.add(sample.name)
    for collector in (HTTP_REQUEST_SECONDS, RPC_SECONDS):
        base = collector._name
        found.update({base + "_bucket", base + "_count", base + "_sum"})
    for collector in (EVENTS_PUBLISHED, EVENTS_CONSUMED, EVENT_RETRIES, EVENTS_PARKED, PAYMENTS, EMAILS,
                      ORDER_TRANSITIONS):
        found.add(collector._name + "_total")
    for collector in (ORDERS, PENDING_EXPIRATIONS, QUEUE_MESSAGES):
        found.add(collector._name)
    return found
