"""The broker as the services see it: its addresses, and how many messages wait where.

**Several addresses.** ``AMQP_URI=amqp://u:p@rabbit-0:5672/v;amqp://u:p@rabbit-1:5672/v;amqp://u:p@rabbit-2:5672/v``:
kombu (under nameko, the gateway's RPC clients and the publishers) connects to
the first address that answers and, when that node goes away, moves on to the
next one, round-robin, on every reconnect. Behind a load balancer or a
Kubernetes Service one address is enough: every reconnect reaches a live node.
nameko logs the broker address when it cannot connect, masking the password of
the first address only; :func:`redact` masks all of them, and importing this
module makes nameko use it (``services.common.queues`` imports it, so every
service and the gateway do).

**Queue depths.** AMQP cannot list queues, and the holding queues
(``delay.<ms>ms``) and parked queues (``<queue>.parked``) are made on demand, so
the depths operators need come from the management HTTP API of the broker (one
request for the whole vhost). ``RABBITMQ_MANAGEMENT_URL`` points at it; by
default it is the first AMQP address's host on port 15672 with its
credentials. The user needs the ``management`` (or ``monitoring``) tag to read
it; without it, only ``expiration.due`` is measured (by a passive AMQP declare).
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import nameko.messaging
from kombu import Connection
from nameko.utils import sanitize_url

DUE_QUEUE = "expiration.due"
HOLDING_PREFIX = "delay."
PARKED_SUFFIX = ".parked"


def addresses(amqp_uri: str) -> list[str]:
    return [part.strip() for part in amqp_uri.split(";") if part.strip()]


def redact(amqp_uri: str) -> str:
    """``amqp_uri`` with the password of every address masked, for logs."""
    return ";".join(sanitize_url(address) for address in addresses(amqp_uri))


nameko.messaging.sanitize_url = redact


def management_api(amqp_uri: str, management_url: str | None = None) -> tuple[str, tuple[str, str], str]:
    """(base URL, credentials, vhost) of the management API of the broker at ``amqp_uri``:
    ``management_url`` (``RABBITMQ_MANAGEMENT_URL``), else port 15672 of the first address's host."""
    parts = urlsplit(addresses(amqp_uri)[0])
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    base = management_url or f"http://{parts.hostname or 'localhost'}:15672"
    return base.rstrip("/"), auth, vhost


def queue_depths(amqp_uri: str, timeout: float = 3, management_url: str | None = None) -> dict[str, int]:
    """Messages (ready + unacknowledged) in every queue of the vhost, by name."""
    import requests  # here only: every process imports this module, few ask for depths (~6 MB)

    base, auth, vhost = management_api(amqp_uri, management_url)
    response = requests.get(f"{base}/api/queues/{quote(vhost, safe='')}", auth=auth, timeout=timeout,
                            params={"columns": "name,messages"})
    response.raise_for_status()
    return {queue["name"]: int(queue.get("messages") or 0) for queue in response.json()}


def passive_depth(amqp_uri: str, queue: str) -> int | None:
    """One queue's ready messages over AMQP (None if it does not exist)."""
    with Connection(amqp_uri, connect_timeout=2) as connection:
        channel = connection.channel()
        try:
            _name, messages, _consumers = channel.queue_declare(queue=queue, passive=True)
            return messages
        except Exception:
            return None


def summary(amqp_uri: str, management_url: str | None = None) -> dict:
    """What waits in the broker that operators care about::

        {"expirations": {"holding": n, "due": n}, "parked": {queue: n}, "retrying_or_holding": …}

    ``holding`` counts every message in a ``delay.*`` queue: pending expiries, and failed
    event deliveries waiting for their next try (they share the holding queues).
    """
    try:
        depths = queue_depths(amqp_uri, management_url=management_url)
    except Exception as exc:  # no management API: what AMQP alone can tell
        due = passive_depth(amqp_uri, DUE_QUEUE)
        return {"source": f"amqp (management API unavailable: {type(exc).__name__})",
                "expirations": {"holding": None, "due": due or 0}, "parked": None}
    holding = sum(n for name, n in depths.items() if name.startswith(HOLDING_PREFIX))
    parked = {name: n for name, n in sorted(depths.items()) if name.endswith(PARKED_SUFFIX)}
    return {"source": "management API", "expirations": {"holding": holding, "due": depths.get(DUE_QUEUE, 0)},
            "parked": parked}
