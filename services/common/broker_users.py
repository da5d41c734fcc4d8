"""One RabbitMQ user per component, allowed only its own queues and exchanges.

RabbitMQ checks three regular expressions per user and vhost (configure = declare
or delete, write = publish or bind to, read = consume or bind from) and, per
topic exchange, which routing keys a user may publish with. On ``nameko-rpc``
the routing key of a call is ``<service>.<method>``, so topic permissions say
which RPCs a component may call at all:

* the **gateway** (internet-facing) may call only the user-facing RPCs and the
  pre-authentication ones (sign-up, sign-in, refresh, sign-out, revocations),
  never an operator RPC such as ``orders.get_order`` or ``auth.revoke_user``;
* each **service** may consume its own ``rpc-<name>`` queue, publish its own
  ``<name>.events``, consume its own event-handler queues, use the delay and
  parked queues, answer RPCs, and call only the RPCs it needs of other services;
* the **operator** user (``nameko shell``, migrations) may do everything.

A limitation of RabbitMQ: declaring an exchange needs *configure* on it, which
also allows deleting it; nameko declares ``nameko-rpc`` and the events
exchanges it binds to, so those stay configurable.

``ticketing broker-users`` applies these through the management API
(compose's ``broker-setup`` one-shot, the chart's hook Job, the tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from .settings import CommonSettings, not_negative, setting

SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
COMPONENTS = SERVICES + ("gateway",)

#: RPCs the gateway calls for users (acting user first) or before anyone is signed in
GATEWAY_RPCS = {
    "auth": ["signup", "signin", "refresh", "signout", "revocations_since"],
    "tickets": ["get_ticket", "list_tickets", "create_user_ticket", "update_user_ticket"],
    "orders": ["create_order", "list_user_orders", "get_user_order", "cancel_user_order"],
    "payments": ["charge"],
}
#: RPCs one service calls on another. Payments' ``orders.release_hold`` needs the charge attempt
#: that holds the order and lets go of that hold only; releasing anyone's hold
#: (``orders.release_any_hold``) is for operators.
SERVICE_RPCS = {
    "orders": {"payments": ["has_unsettled_charge"]},
    "payments": {"orders": ["hold_for_payment", "release_hold", "get_order"]},
}
REPLY_KEY = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _calls(rpcs: dict[str, list[str]]) -> str:
    return "|".join(rf"{service}\.({'|'.join(methods)})" for service, methods in sorted(rpcs.items()))


def permissions(component: str) -> dict:
    """``{"configure", "write", "read"}`` regexes and the topic permissions on ``nameko-rpc``."""
    if component == "gateway":
        own = r"^(nameko-rpc|rpc\.reply-standalone_rpc_proxy-" + REPLY_KEY + ")$"
        return {"configure": own, "write": own, "read": own,
                "topic": {"exchange": "nameko-rpc", "write": f"^({_calls(GATEWAY_RPCS)})$",
                          "read": f"^{REPLY_KEY}$"}}
    if component == "operator":
        return {"configure": ".*", "write": ".*", "read": ".*", "topic": None}
    if component not in SERVICES:
        raise ValueError(f"unknown component {component!r}")
    name = component
    queues = [
        "nameko-rpc", rf"rpc-{name}", rf"rpc\.reply-{name}-{REPLY_KEY}",
        r"[a-z]+\.events",  # the ones it consumes from are declared by nameko (and read); its own written
        rf"evt-[a-z]+-[a-z]+:[a-z]+--{name}\.[a-z_]+(\.parked)?",
        r"delay\.[0-9]+ms",
    ]
    if name == "expiration":
        queues.append(r"expiration\.due")
    own = "^(" + "|".join(queues) + ")$"
    # publishing needs write on the exchange, binding a queue only read on it: so write names
    # its own events exchange alone, and no service can forge another's events
    writes = [rf"{name}\.events" if q == r"[a-z]+\.events" else q for q in queues]
    calls = SERVICE_RPCS.get(name, {})
    write_keys = f"^({REPLY_KEY}|{_calls(calls)})$" if calls else f"^{REPLY_KEY}$"
    return {
        "configure": own,
        # the default exchange routes delayed and parked messages to their queues
        "write": "^(" + "|".join(writes) + "|amq\\.default)$",
        "read": own,
        "topic": {"exchange": "nameko-rpc", "write": write_keys, "read": rf"^({name}\.\*|{REPLY_KEY})$"},
    }


def apply(http, management_url: str, vhost: str, user: str, password: str, component: str) -> None:
    """Create or update ``user`` with ``component``'s permissions on ``vhost`` (a ``requests`` session
    authenticated as a broker administrator)."""
    base, v, u = management_url.rstrip("/"), quote(vhost, safe=""), quote(user, safe="")
    http.put(f"{base}/api/users/{u}", json={"password": password, "tags": ""}, timeout=10).raise_for_status()
    rules = permissions(component)
    http.put(f"{base}/api/permissions/{v}/{u}", timeout=10,
             json={k: rules[k] for k in ("configure", "write", "read")}).raise_for_status()
    if rules["topic"]:
        http.put(f"{base}/api/topic-permissions/{v}/{u}", json=rules["topic"], timeout=10).raise_for_status()


@dataclass(frozen=True)
class BrokerSetupSettings(CommonSettings):
    """What ``ticketing broker-users`` reads (besides each component's ``<COMPONENT>_AMQP_USER`` and
    ``<COMPONENT>_AMQP_PASSWORD``, named after the components)."""

    rabbitmq_admin_user: str = setting("guest", "the broker's administrator, who creates the users")
    rabbitmq_admin_password: str = setting("guest", "the administrator's password")
    rabbitmq_vhost: str = setting("/", "the vhost the components use (created when missing)")
    rabbitmq_wait_seconds: int = setting(60, "how long to wait for a management API that does not answer yet",
                                         check=not_negative)

    @property
    def management_url(self) -> str:
        return (self.rabbitmq_management_url or "http://localhost:15672").rstrip("/")
