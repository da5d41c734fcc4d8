"""``ticketing up --replicas``: how many processes of each service the supervisor runs."""
import pytest

from ticketing import cli
from ticketing.supervisor import plan


def test_replicas_for_every_service_then_one_service_overrides():
    assert cli.parse_replicas([]) == {}
    assert cli.parse_replicas(["2"]) == {name: 2 for name in cli.SERVICES}
    assert cli.parse_replicas(["2", "orders=3"]) == {**{name: 2 for name in cli.SERVICES}, "orders": 3}
    assert cli.parse_replicas(["payments=4"]) == {"payments": 4}


@pytest.mark.parametrize("value", ["0", "-1", "two", "orders=0", "gateway=2", "nobody=2", "orders="])
def test_bad_replica_counts_are_refused(value):
    with pytest.raises(ValueError):
        cli.parse_replicas([value])


def test_the_command_line_refuses_a_bad_count_before_starting_anything(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["up", "--replicas", "orders=zero"])
    assert exit_.value.code == 2 and "--replicas" in capsys.readouterr().err


def test_each_replica_is_its_own_process_with_its_own_health_port():
    children = plan(["orders", "payments"], {"orders": 3}, {"AMQP_URI": "amqp://x"}, port=8080)
    assert [(c.name, c.component) for c in children] == [
        ("orders", "orders"), ("orders.2", "orders"), ("orders.3", "orders"), ("payments", "payments"), ("web", "web")]
    ports = [c.env["HEALTH_PORT"] for c in children[:-1]]
    assert len(set(ports)) == 4
    assert all(c.health_url == f"http://127.0.0.1:{c.env['HEALTH_PORT']}/readyz" for c in children[:-1])
    assert children[-1].env["PORT"] == "8080" and all(c.env["AMQP_URI"] == "amqp://x" for c in children)


def test_each_child_of_ticketing_up_gets_only_its_own_secrets():
    secrets = {"JWT_PRIVATE_KEY_FILE": "/keys/jwt-private.pem", "SECRET_KEY_FILE": "/keys/secret-key",
               "STRIPE_KEY": "sk_test_x", "SENDGRID_API_KEY": "SG.x"}
    owner = {"JWT_PRIVATE_KEY_FILE": "auth", "SECRET_KEY_FILE": "web", "STRIPE_KEY": "payments",
             "SENDGRID_API_KEY": "confirmation"}
    children = plan(list(cli.SERVICES), {}, {"AMQP_URI": "amqp://x", "JWT_PUBLIC_KEY_FILE": "/keys/jwt-public.pem",
                                             **secrets}, port=8080)
    assert {c.name for c in children} == {*cli.SERVICES, "web"}
    for child in children:
        assert {k for k in secrets if k in child.env} == {k for k, who in owner.items() if who == child.name}, child.name
        assert child.env["JWT_PUBLIC_KEY_FILE"] == "/keys/jwt-public.pem"  # public: anyone may verify
