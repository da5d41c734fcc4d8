"""Which RPCs of other services a component may call (the broker's topic permissions on nameko-rpc)."""
import re

from services.common.broker_users import permissions


def may_call(component, routing_key):
    return re.fullmatch(permissions(component)["topic"]["write"], routing_key) is not None


def test_payments_releases_its_own_holds_and_only_operators_release_anyone_s():
    assert may_call("payments", "orders.hold_for_payment") and may_call("payments", "orders.release_hold")
    for operator_rpc in ("orders.release_any_hold", "orders.cancel_order", "orders.find_orders"):
        assert not may_call("payments", operator_rpc)
        assert not may_call("gateway", operator_rpc)
    assert permissions("operator")["topic"] is None  # operators may call everything
