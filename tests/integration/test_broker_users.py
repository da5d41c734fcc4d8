"""Every component on its own broker user: the services work, the gateway cannot call operator RPCs."""
import uuid
from decimal import Decimal
from urllib.parse import quote, unquote

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from services.common import broker_users
from services.common.errors import Forbidden
from tests.conftest import RUN_ID
from tests.support.rabbit import MANAGEMENT_URL
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def users(rabbit_admin, vhost):
    """A namespaced broker user per component on the test's vhost; removed afterwards."""
    name = vhost.rsplit("/", 1)[1]  # quoted, as in the URI
    vhost_name = unquote(name)
    made = {}
    for component in broker_users.COMPONENTS + ("operator",):
        user = f"ticketing-test-{RUN_ID}-{component}-{uuid.uuid4().hex[:6]}"
        password = uuid.uuid4().hex
        broker_users.apply(rabbit_admin.http, MANAGEMENT_URL, vhost_name, user, password, component)
        made[component] = f"amqp://{quote(user, safe='')}:{password}@127.0.0.1:5672/{name}"
    yield made
    for uri in made.values():
        user = uri.split("//", 1)[1].split(":", 1)[0]
        rabbit_admin.http.delete(f"{MANAGEMENT_URL}/api/users/{user}", timeout=10)


def test_services_work_on_their_own_users_and_the_gateway_is_limited_to_user_rpcs(users, container_factory,
                                                                                  service_config):
    from ticketing.cli import service_class

    for name in broker_users.SERVICES:
        config = {**service_config(name), "AMQP_URI": users[name]}
        if name not in ("expiration",):
            config["DB_URIS"] = service_config(name)["DB_URIS"]
        if name == "orders":  # short, for the expiry below; the paid order is held while it is paid
            config["EXPIRATION_WINDOW_SECONDS"] = "3"
        container_factory(service_class(name), config).start()

    gateway = {"AMQP_URI": users["gateway"], "serializer": "json"}
    seller, buyer = "a" * 32, "b" * 32
    with ClusterRpcProxy(gateway, timeout=10) as rpc:
        ticket = rpc.tickets.create_user_ticket(seller, "Show", "10.00", uuid.uuid4().hex)
        # the ticket reaches orders' replica through tickets.events (the services' permissions at work)
        order = wait_for(lambda: _try(lambda: rpc.orders.create_order(buyer, "b@example.com", ticket["id"])),
                         timeout=10)
        assert rpc.orders.get_user_order(buyer, order["id"])["id"] == order["id"]
        with pytest.raises(Forbidden):
            rpc.orders.get_user_order(seller, order["id"])

    for operator_call in (lambda rpc: rpc.orders.get_order(order["id"]),
                          lambda rpc: rpc.orders.cancel_order(order["id"]),
                          lambda rpc: rpc.auth.revoke_user("b@example.com"),
                          lambda rpc: rpc.confirmation.resend(order["id"])):
        with pytest.raises(Exception) as refused:
            with ClusterRpcProxy(gateway, timeout=5) as rpc:
                operator_call(rpc)
        assert "ACCESS_REFUSED" in repr(refused.value) or "403" in repr(refused.value), repr(refused.value)

    # the payments service may hold the order through orders (a service-to-service call)
    with ClusterRpcProxy(gateway, timeout=10) as rpc:
        payment = rpc.payments.charge(buyer, order["id"], "tok_visa")
    assert payment["id"]
    operator = {"AMQP_URI": users["operator"], "serializer": "json"}
    with ClusterRpcProxy(operator, timeout=10) as rpc:
        wait_for(lambda: rpc.orders.get_order(order["id"])["status"] == "complete", timeout=10)
        assert Decimal(rpc.orders.get_order(order["id"])["ticket"]["price"]) == Decimal("10.00")

    # expiry end to end: orders -> expiration (delay queues, the default exchange) -> orders -> tickets
    with ClusterRpcProxy(gateway, timeout=10) as rpc:
        short = rpc.tickets.create_user_ticket(seller, "Short", "5.00", uuid.uuid4().hex)
        expiring = wait_for(lambda: _try(lambda: rpc.orders.create_order(buyer, "b@example.com", short["id"])),
                            timeout=10)
        wait_for(lambda: rpc.orders.get_user_order(buyer, expiring["id"])["status"] == "cancelled", timeout=15,
                 what="the order expired through the expiration service")
        wait_for(lambda: rpc.tickets.get_ticket(short["id"])["orderId"] is None, timeout=10,
                 what="the ticket is back on sale")


def _try(call):
    from services.common.errors import NotFound

    try:
        return call()
    except NotFound:  # not replicated yet
        return None


# ------------------------------------------------ `ticketing broker-users` (compose's one-shot, the chart's Job)

@pytest.fixture
def command_env(monkeypatch, rabbit_admin):
    """What compose and the chart give the command: namespaced users on a vhost that does not exist yet."""
    from tests.support.rabbit import AUTH

    vhost_name = f"ticketing-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    users = {c: f"ticketing-test-{RUN_ID}-{c}-{uuid.uuid4().hex[:6]}" for c in broker_users.COMPONENTS}
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", MANAGEMENT_URL)
    monkeypatch.setenv("RABBITMQ_ADMIN_USER", AUTH[0])
    monkeypatch.setenv("RABBITMQ_ADMIN_PASSWORD", AUTH[1])
    monkeypatch.setenv("RABBITMQ_VHOST", vhost_name)
    for component, user in users.items():
        monkeypatch.setenv(f"{component.upper()}_AMQP_USER", user)
        monkeypatch.setenv(f"{component.upper()}_AMQP_PASSWORD", uuid.uuid4().hex)
    yield vhost_name, users
    for user in users.values():
        rabbit_admin.http.delete(f"{MANAGEMENT_URL}/api/users/{quote(user, safe='')}", timeout=10)
    rabbit_admin.delete_vhost(vhost_name)


def test_the_command_creates_the_vhost_and_each_component_s_user_again_and_again(command_env, rabbit_admin):
    from ticketing.cli import main

    vhost_name, users = command_env
    for _ in range(2):  # an upgrade runs it again over the same users
        main(["broker-users"])
        for component, user in users.items():
            rules = broker_users.permissions(component)
            (granted,) = rabbit_admin.http.get(f"{MANAGEMENT_URL}/api/users/{quote(user, safe='')}/permissions",
                                               timeout=10).json()
            assert granted["vhost"] == vhost_name
            assert {k: granted[k] for k in ("configure", "write", "read")} == \
                {k: rules[k] for k in ("configure", "write", "read")}, component
            topics = rabbit_admin.http.get(f"{MANAGEMENT_URL}/api/users/{quote(user, safe='')}/topic-permissions",
                                           timeout=10).json()
            assert [{k: t[k] for k in ("exchange", "write", "read")} for t in topics] == [rules["topic"]], component


def test_the_command_says_why_it_cannot_reach_the_management_api(command_env, monkeypatch):
    import time

    from services.common.net import free_port
    from ticketing.cli import main

    monkeypatch.setenv("RABBITMQ_ADMIN_PASSWORD", "not-the-password")
    with pytest.raises(SystemExit, match="refused RABBITMQ_ADMIN_USER/PASSWORD"):
        main(["broker-users"])
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RABBITMQ_WAIT_SECONDS", "1")
    started = time.monotonic()
    with pytest.raises(SystemExit, match="does not answer"):
        main(["broker-users"])
    assert time.monotonic() - started < 10


def test_the_chart_s_job_makes_the_very_users_its_pods_connect_as(rabbit_admin, monkeypatch):
    """The chart rendered for an external broker (this one): run its Job's command with the Job's
    environment, then connect with each pod's AMQP_URI as Kubernetes would expand it."""
    import base64
    import re

    from kombu import Connection

    from tests.deploy.support import component_of, manifests, of_kind, pod_spec
    from tests.support.rabbit import AUTH
    from ticketing.cli import main

    overview = rabbit_admin.http.get(f"{MANAGEMENT_URL}/api/overview", timeout=10).json()
    amqp_port = next(listener["port"] for listener in overview["listeners"] if listener["protocol"] == "amqp")
    vhost_name = f"ticketing-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    prefix = f"ticketing-test-{RUN_ID}-{uuid.uuid4().hex[:4]}-"
    objects = manifests({"rabbitmq": {
        "perComponentUsers": {"usernamePrefix": prefix},
        "inCluster": {"enabled": False},
        "external": {"addresses": f"amqp://127.0.0.1:{amqp_port}", "vhost": vhost_name, "managementUrl": MANAGEMENT_URL,
                     "adminExistingSecret": "mq-admin"}}})
    secrets = {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
               for s in of_kind(objects, "Secret")}
    secrets["mq-admin"] = {"RABBITMQ_ADMIN_USER": AUTH[0], "RABBITMQ_ADMIN_PASSWORD": AUTH[1]}

    def environment(workload) -> dict[str, str]:
        resolved = {}
        for var in pod_spec(workload)["containers"][0].get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            value = secrets[ref["name"]][ref["key"]] if ref else var["value"]
            resolved[var["name"]] = re.sub(r"\$\(([A-Z0-9_]+)\)", lambda m: resolved[m.group(1)], value)
        return resolved

    (job,) = [j for j in of_kind(objects, "Job") if component_of(j) == "broker-users"]
    assert pod_spec(job)["containers"][0]["args"] == ["broker-users"]
    try:
        for name, value in environment(job).items():
            monkeypatch.setenv(name, value)
        main(["broker-users"])
        connected = set()
        for deployment in of_kind(objects, "Deployment"):
            env = environment(deployment)
            if "AMQP_URI" not in env:
                continue
            with Connection(env["AMQP_URI"], connect_timeout=5) as connection:
                connection.connect()
                assert connection.connected
            connected.add(component_of(deployment))
        assert connected == set(broker_users.COMPONENTS)
    finally:
        for component in broker_users.COMPONENTS:
            rabbit_admin.http.delete(f"{MANAGEMENT_URL}/api/users/{quote(prefix + component, safe='')}", timeout=10)
        rabbit_admin.delete_vhost(vhost_name)


def test_a_service_may_publish_only_its_own_events_and_consume_only_its_own_queues(users):
    """Tickets' user cannot forge orders' events (an order:completed would send a confirmation), nor take
    the RPCs meant for orders, nor read another service's event-handler queue; the gateway neither."""
    from amqp.exceptions import AccessRefused
    from kombu import Connection, Exchange, Queue
    from nameko.standalone.events import get_event_exchange

    orders_events = get_event_exchange("orders", {})
    handler_queue = "evt-orders-order:completed--confirmation.on_order_completed"
    with Connection(users["operator"], connect_timeout=5) as admin:  # what the services would have declared
        channel = admin.channel()
        orders_events(channel).declare()
        for name in ("rpc-orders", handler_queue):
            Queue(name, durable=True)(channel).declare()

    def publish(component, exchange, routing_key):
        with Connection(users[component], connect_timeout=5, transport_options={"confirm_publish": True}) as conn:
            conn.Producer().publish({"forged": True}, exchange=exchange, routing_key=routing_key, retry=False)

    def consume(component, queue):
        with Connection(users[component], connect_timeout=5) as conn:
            with conn.Consumer(Queue(queue, no_declare=True), callbacks=[lambda body, message: None]):
                conn.drain_events(timeout=0.2)

    publish("orders", orders_events, "order:completed")  # its own: allowed
    for component in ("tickets", "payments", "gateway"):
        with pytest.raises(AccessRefused):
            publish(component, orders_events, "order:completed")
        for queue in ("rpc-orders", handler_queue):
            with pytest.raises(AccessRefused):
                consume(component, queue)
    # the default exchange routes by queue name: the services need it (delays, parked messages), the
    # internet-facing gateway does not have it
    with pytest.raises(AccessRefused):
        publish("gateway", Exchange("", type="direct"), handler_queue)

