"""RabbitMQ administration for tests: vhosts and queue inspection (management API)."""
from __future__ import annotations

import os
from urllib.parse import quote

import requests

MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")


class RabbitAdmin:
    def __init__(self, base: str = MANAGEMENT_URL):
        self.base = base.rstrip("/")
        self.http = requests.Session()
        self.http.auth = AUTH

    def _vhost_url(self, name: str) -> str:
        return f"{self.base}/api/vhosts/{quote(name, safe='')}"

    def create_vhost(self, name: str) -> None:
        self.http.put(self._vhost_url(name), timeout=10).raise_for_status()
        self.http.put(f"{self.base}/api/permissions/{quote(name, safe='')}/guest",
                      json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=10).raise_for_status()

    def delete_vhost(self, name: str) -> None:
        self.http.delete(self._vhost_url(name), timeout=10)

    def queues(self, vhost: str) -> dict[str, int]:
        """Queue name -> messages (ready + unacked) in ``vhost``."""
        response = self.http.get(f"{self.base}/api/queues/{quote(vhost, safe='')}", timeout=10)
        response.raise_for_status()
        return {q["name"]: q.get("messages", 0) for q in response.json()}

    def queue_list(self, vhost: str) -> list[dict]:
        """Every queue of ``vhost`` as the management API describes it (name, type, durable, arguments ...)."""
        response = self.http.get(f"{self.base}/api/queues/{quote(vhost, safe='')}", timeout=10)
        response.raise_for_status()
        return response.json()
