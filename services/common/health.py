"""Liveness and readiness over HTTP for every nameko service (probes, `ticketing up`)."""
from __future__ import annotations

import json

from kombu import Connection
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.messaging import QueueConsumer
from nameko.web.handlers import http


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
    """Adds ``GET /healthz`` (the process answers) and ``GET /readyz`` (broker and database)."""

    config = Config()
    consuming = Consuming()

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
