"""Several broker addresses: one ``AMQP_URI`` listing the nodes of a RabbitMQ cluster.

``AMQP_URI=amqp://u:p@rabbit-0:5672/v;amqp://u:p@rabbit-1:5672/v;amqp://u:p@rabbit-2:5672/v``:
kombu (under nameko, the gateway's RPC clients and the publishers) connects to
the first address that answers and, when that node goes away, moves on to the
next one, round-robin, on every reconnect. Behind a load balancer or a
Kubernetes Service one address is enough: every reconnect reaches a live node.

nameko logs the broker address when it cannot connect, masking the password of
the first address only; :func:`redact` masks all of them, and importing this
module makes nameko use it (``services.common.queues`` imports it, so every
service and the gateway do).
"""
from __future__ import annotations

import nameko.messaging
from nameko.utils import sanitize_url


def addresses(amqp_uri: str) -> list[str]:
    return [part.strip() for part in amqp_uri.split(";") if part.strip()]


def redact(amqp_uri: str) -> str:
    """``amqp_uri`` with the password of every address masked, for logs."""
    return ";".join(sanitize_url(address) for address in addresses(amqp_uri))


nameko.messaging.sanitize_url = redact
