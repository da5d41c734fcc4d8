"""Operators' look-ups: orders found by user and/or status, newest first; counts by status."""
import pytest

from services.common.errors import BadRequest
from services.orders import domain
from tests.unit.orders.test_domain import ALICE, BOB, reserve, store, tx  # noqa: F401 - fixtures


def test_find_orders_by_user_and_status_newest_first(tx):
    first = reserve(tx)
    domain.cancel_order(tx, first.id, ALICE)
    second = reserve(tx, BOB)
    tx.session.commit()
    assert [o.id for o in domain.find_orders(tx.session)] == [second.id, first.id]
    assert [o.id for o in domain.find_orders(tx.session, user_id=ALICE)] == [first.id]
    assert [o.id for o in domain.find_orders(tx.session, status="created")] == [second.id]
    assert domain.find_orders(tx.session, user_id=ALICE, status="created") == []
    assert len(domain.find_orders(tx.session, limit=1)) == 1
    with pytest.raises(BadRequest):
        domain.find_orders(tx.session, status="lost")


def test_count_by_status_names_every_status(tx):
    reserve(tx)
    tx.session.commit()
    assert domain.count_by_status(tx.session) == {"created": 1, "awaiting:payment": 0, "complete": 0, "cancelled": 0}
