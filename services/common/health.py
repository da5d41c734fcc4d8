"""What every nameko service serves on its health port (probes, Prometheus, `ticketing status`).

``GET /healthz`` the process answers · ``GET /readyz`` broker, consumers and database ·
``GET /metrics`` Prometheus metrics · ``GET /errors`` the last warnings and errors it logged.
"""
from __future__ import annotations

import json
import logging

from kombu import Connection
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from nameko.web.handlers import http

from . import logs, metrics
from .telemetry import Telemetry


class Consuming(DependencyProvider):
    """Whether the container's AMQP consumers are up. The HTTP server can answer before them,
    and a SIGTERM in that window hangs nameko 2's shutdown, so readiness waits for them."""

    def get_dependency(self, worker_ctx):
        container = self.container

        def consuming() -> bool:
            consumers = [ext for ext in container.extensions if isinstance(ext, QueueConsumer)]
            # nameko keeps this state private; it is set once the broker confirmed every consumer
            return all(ext._consumers_ready.ready() for ext in consumers)

        return consuming


def broker_reachable(amqp_uri: str) -> None:
    """Raises unless some broker answers: with several addresses (``a;b;c``), any one of them."""
    with Connection(amqp_uri, connect_timeout=2) as connection:
        # kombu moves on to the next address after each failed try
        connection.ensure_connection(max_retries=len(connection.alt) or 1, interval_start=0, interval_step=0.2)


class HealthMixin:
    """Adds ``/healthz``, ``/readyz``, ``/metrics`` and ``/errors``, and the per-worker log context
    and metrics (:class:`~services.common.telemetry.Telemetry`)."""

    config = Config()
    consuming = Consuming()
    telemetry = Telemetry()

    def refresh_metrics(self) -> None:
        """Override to update gauges read at scrape time (e.g. orders by status)."""

    @http("GET", "/metrics")
    def serve_metrics(self, request):
        try:
            self.refresh_metrics()
        except Exception as exc:  # a scrape still gets the counters
            logging.getLogger(__name__).warning("could not refresh gauges: %r", exc)
        body, content_type = metrics.exposition()
        return 200, {"Content-Type": content_type}, body.decode()

    @http("GET", "/errors")
    def serve_recent_errors(self, request):
        return 200, {"Content-Type": "application/json"}, json.dumps({"errors": logs.recent_errors.latest()})

    @http("GET", "/healthz")
    def healthz(self, request):
        return 200, {"Content-Type": "application/json"}, json.dumps({"status": "ok"})

    @http("GET", "/readyz")
    def readyz(self, request):
        checks = {"consumers": "ok" if self.consuming() else "starting"}
        try:
            broker_reachable(self.config["AMQP_URI"])
            checks["broker"] = "ok"
        except Exception as exc:  # report, don't crash the probe
            checks["broker"] = f"unreachable: {type(exc).__name__}"
        store = getattr(self, "store", None)
        if store is not None:
            try:
                store.ping()
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        body = json.dumps({"status": "ok" if ready else "unavailable", "checks": checks})
        return (200 if ready else 503), {"Content-Type": "application/json"}, body
