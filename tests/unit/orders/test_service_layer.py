"""The orders service layer on a real (SQLite) store: each use of an order in its own transaction,
what it saves and what the outbox publishes after the commit (``store.published``)."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.orders import domain, repository
from services.orders import service_layer as orders
from services.orders.models import Order, TicketReplica

SELLER, ALICE, BOB = "5" * 32, "a" * 32, "b" * 32
TICKET = "7" * 32


@pytest.fixture
def store(make_store):
    store = make_store("orders")  # the real migration, partial index included
    with store.transaction() as tx:
        tx.session.add(TicketReplica(id=TICKET, title="Concert", price=Decimal("12.50"), user_id=SELLER, version=0))
    return store


def names(store):
    return [name for name, _ in store.published]


def status(store, order_id):
    with store.read() as session:
        return repository.find(session, order_id).status


def reserve(store, user=ALICE, window=60):
    return orders.reserve(store, user, f"{user[:4]}@example.com", TICKET, window)


def expire_one(tx, order_id, now=None) -> bool:
    """expiration:complete of one order: True if it cancelled it."""
    return order_id in orders.expire_all(tx, [order_id], now)


def in_tx(store, function, *args, **kwargs):
    """An event handler's use: inside the transaction ``@handles`` opens."""
    with store.transaction() as tx:
        return function(tx, *args, **kwargs)


def ticket_event(version, title="Concert", price="12.50", ticket_id=TICKET):
    return events.parse(events.TICKET_UPDATED, events.new_event(
        events.TICKET_UPDATED, id=ticket_id, version=version, title=title, price=Decimal(price), userId=SELLER))


def test_reserve_sets_expiry_and_emits_order_created(store):
    before = events.utcnow()
    order = reserve(store, window=900)
    assert order.status == "created" and order.version == 0
    assert timedelta(seconds=899) < order.expires_at - before < timedelta(seconds=901)
    assert order.to_dict()["ticket"] == {"id": TICKET, "title": "Concert", "price": "12.50"}
    assert order.to_dict()["expiresAt"].endswith("Z")
    (name, payload), = store.published
    assert name == events.ORDER_CREATED
    assert payload["userEmail"] == "aaaa@example.com" and payload["ticket"] == {"id": TICKET, "price": "12.50"}
    assert payload["expiresAt"] == order.to_dict()["expiresAt"]


def test_reserve_rules(store):
    with pytest.raises(BadRequest) as bad:
        orders.reserve(store, ALICE, "a@example.com", "not-an-id", 60)
    assert bad.value.field == "ticketId"
    with pytest.raises(NotFound):
        orders.reserve(store, ALICE, "a@example.com", "f" * 32, 60)
    with pytest.raises(Conflict, match="You cannot buy your own ticket"):
        orders.reserve(store, SELLER, "s@example.com", TICKET, 60)


def test_a_reserved_ticket_cannot_be_ordered_again_until_cancelled(store):
    first = reserve(store)
    with pytest.raises(Conflict, match="Ticket is already reserved"):
        reserve(store, BOB)
    orders.cancel_for_buyer(store, ALICE, first.id)
    assert reserve(store, BOB).status == "created"


def test_cancel_rules(store):
    order = reserve(store)
    with pytest.raises(Forbidden, match="This order is not yours"):
        orders.cancel_for_buyer(store, BOB, order.id)
    with pytest.raises(NotFound):
        orders.cancel_for_buyer(store, ALICE, "nope")
    cancelled = orders.cancel_for_buyer(store, ALICE, order.id)
    assert cancelled.status == "cancelled" and cancelled.version == 1
    assert names(store)[-1] == events.ORDER_CANCELLED and store.published[-1][1]["version"] == 1
    again = orders.cancel_for_buyer(store, ALICE, order.id)  # a no-op
    assert again.version == 1 and len(store.published) == 2
    assert orders.cancel_any(store, order.id).version == 1  # the operator's: no owner check, same rules


def test_complete_order_cannot_be_cancelled_nor_expired(store):
    order = reserve(store)
    paid = in_tx(store, orders.complete, order.id)
    assert paid.status == "complete" and paid.version == 1
    name, payload = store.published[-1]
    assert name == events.ORDER_COMPLETED and payload["ticket"]["title"] == "Concert"
    with pytest.raises(Conflict, match="Cannot cancel a completed order"):
        orders.cancel_for_buyer(store, ALICE, order.id)
    with pytest.raises(Conflict, match="Cannot cancel a completed order"):
        orders.cancel_any(store, order.id)  # operator
    assert not in_tx(store, expire_one, order.id, now=order.expires_at + timedelta(seconds=1))
    assert status(store, order.id) == "complete"
    assert in_tx(store, orders.complete, order.id).version == 1  # a second payment:created: nothing more
    assert len(store.published) == 2


def test_show_is_for_the_owner_and_list_is_oldest_first(store):
    first = reserve(store)
    with pytest.raises(Forbidden):
        orders.order_of(store, BOB, first.id)
    assert orders.order_of(store, ALICE, first.id)["id"] == first.id
    orders.cancel_for_buyer(store, ALICE, first.id)
    second = reserve(store)
    assert [o["id"] for o in orders.orders_of(store, ALICE)] == [first.id, second.id]
    assert orders.orders_of(store, BOB) == []


def test_hold_for_payment_and_release(store):
    order = reserve(store)
    with pytest.raises(Forbidden):
        orders.hold(store, order.id, BOB, "1" * 32)
    held = orders.hold(store, order.id, ALICE, "1" * 32)
    assert held["status"] == "awaiting:payment" and held["amountCents"] == 1250 and held["version"] == 1
    with pytest.raises(Conflict, match="Order is being paid"):
        orders.hold(store, order.id, ALICE, "2" * 32)
    # expiry and the buyer's cancel both wait for the payment to finish
    assert not in_tx(store, expire_one, order.id, now=order.expires_at + timedelta(seconds=1))
    with pytest.raises(Conflict, match="Order is being paid"):
        orders.cancel_for_buyer(store, ALICE, order.id)
    released = orders.release_by(store, order.id, "1" * 32)
    assert released.status == "created" and released.version == 2
    assert names(store) == [events.ORDER_CREATED]


def test_release_after_expiry_cancels(store):
    order = reserve(store, window=60)
    orders.hold(store, order.id, ALICE, "1" * 32)
    later = order.expires_at + timedelta(seconds=1)
    assert orders.release_by(store, order.id, "1" * 32, now=later).status == "cancelled"
    assert names(store)[-1] == events.ORDER_CANCELLED


def test_hold_refuses_expired_cancelled_and_paid_orders(store):
    order = reserve(store, window=60)
    with pytest.raises(Conflict, match="Order has expired"):
        orders.hold(store, order.id, ALICE, "1" * 32, now=order.expires_at)
    orders.cancel_for_buyer(store, ALICE, order.id)
    with pytest.raises(Conflict, match="Order is cancelled"):
        orders.hold(store, order.id, ALICE, "1" * 32)
    paid = reserve(store, BOB)
    in_tx(store, orders.complete, paid.id)
    with pytest.raises(Conflict, match="Order is already paid"):
        orders.hold(store, paid.id, BOB, "1" * 32)


def test_expire_cancels_only_created_orders(store):
    order = reserve(store)
    later = order.expires_at + timedelta(milliseconds=1)
    assert in_tx(store, expire_one, order.id, now=later)
    assert not in_tx(store, expire_one, order.id, now=later)  # a second expiration:complete: nothing
    with store.read() as session:
        cancelled = repository.find(session, order.id)
        assert (cancelled.status, cancelled.version) == ("cancelled", 1)
    name, payload = store.published[-1]
    assert name == events.ORDER_CANCELLED and payload["version"] == 1 and payload["ticket"] == {"id": TICKET}
    assert len(store.published) == 2
    assert not in_tx(store, expire_one, "f" * 32) and not in_tx(store, expire_one, "bad")  # unknown: dropped


def test_sweeps_find_overdue_orders_and_stale_holds(store):
    order = reserve(store, window=1)
    now = order.expires_at + timedelta(seconds=11)

    def overdue(at):
        with store.read() as session:
            return repository.overdue_ids(session, domain.overdue_cutoff(10, at))

    def stale(at):
        with store.read() as session:
            return repository.stale_hold_ids(session, domain.stale_hold_cutoff(120, at))

    assert overdue(now) == [order.id]
    assert overdue(order.expires_at + timedelta(seconds=5)) == []
    orders.hold(store, order.id, ALICE, "1" * 32, now=order.expires_at - timedelta(milliseconds=500))
    assert overdue(now) == []
    assert stale(now + timedelta(seconds=120)) == [order.id]
    assert stale(now) == []


def test_replica_takes_the_newest_version_and_drops_older_ones(store):
    # an event carries the ticket's whole state: v2 before v1 is applied, and v1 is stale then
    assert in_tx(store, orders.apply_ticket, ticket_event(2, title="v2", price="20")).price == Decimal("20.00")
    assert in_tx(store, orders.apply_ticket, ticket_event(1, title="v1")) is None
    assert in_tx(store, orders.apply_ticket, ticket_event(2, title="again")) is None  # duplicate version: dropped
    assert in_tx(store, orders.apply_ticket, ticket_event(0)) is None  # stale
    with store.read() as session:
        replica = session.get(TicketReplica, TICKET)
        assert (replica.version, replica.title, replica.price) == (2, "v2", Decimal("20.00"))


def test_only_ticket_updates_that_change_the_replica_are_news(store):
    echo = ticket_event(1)  # the ticket reserved or released: same title, price and seller
    repriced, retitled = ticket_event(2, price="15.00"), ticket_event(3, title="Opera")
    stale, unknown = ticket_event(0, price="1.00"), ticket_event(0, ticket_id="8" * 32)
    assert orders.ticket_news(store, [echo, repriced, retitled, stale, unknown]) == [repriced, retitled, unknown]
    in_tx(store, orders.apply_ticket, repriced)  # after skipped echoes: applied all the same
    with store.read() as session:
        assert session.get(TicketReplica, TICKET).price == Decimal("15.00")


def test_a_batch_of_expiries_cancels_the_due_ones_in_one_update(store):
    order = reserve(store, ALICE, window=0)
    with store.transaction() as tx:  # the same order twice, an unknown and a malformed id beside it
        assert orders.expire_all(tx, [order.id, order.id, "0" * 32, "not-an-id"]) == [order.id]
    assert status(store, order.id) == "cancelled"
    assert names(store).count(events.ORDER_CANCELLED) == 1


def test_replica_is_created_from_v0_only(store):
    new_ticket = "8" * 32
    with pytest.raises(NotYetApplicable):
        in_tx(store, orders.apply_ticket, ticket_event(1, ticket_id=new_ticket))
    assert in_tx(store, orders.apply_ticket, ticket_event(0, ticket_id=new_ticket)).version == 0


def test_a_concurrent_change_is_refused_not_overwritten(store):
    order = reserve(store)
    with pytest.raises(Conflict, match="The order changed meanwhile, try again"):
        with store.transaction() as tx:
            mine = repository.find(tx.session, order.id)  # read without the lock
            with Session(store.engine) as other:
                other.get(Order, order.id).status = "cancelled"
                other.commit()
            orders._apply(tx, mine, domain.step(mine.status, domain.PAY))
    assert status(store, order.id) == "cancelled"


def test_an_early_expiration_does_not_cancel_an_order_whose_time_is_not_up(store):
    order = reserve(store, window=60)
    assert not in_tx(store, expire_one, order.id, now=order.expires_at - timedelta(seconds=1))
    assert status(store, order.id) == "created" and len(store.published) == 1
    assert in_tx(store, expire_one, order.id, now=order.expires_at)


def test_the_order_keeps_the_price_it_was_reserved_at(store):
    order = reserve(store)
    in_tx(store, orders.apply_ticket, ticket_event(1, price="99.00"))  # the seller reprices before tickets saw it
    assert orders.any_order(store, order.id)["ticket"]["price"] == "12.50"
    assert orders.hold(store, order.id, ALICE, "1" * 32)["amountCents"] == 1250
    in_tx(store, orders.complete, order.id)
    name, payload = store.published[-1]
    assert name == events.ORDER_COMPLETED and payload["ticket"]["price"] == "12.50"
    assert store.published[0][1]["ticket"]["price"] == "12.50"


def test_the_same_holder_gets_its_hold_again_and_anyone_else_409(store):
    order = reserve(store)
    first = orders.hold(store, order.id, ALICE, "1" * 32)
    assert orders.hold(store, order.id, ALICE, "1" * 32) == first  # a redelivered request
    with pytest.raises(Conflict, match="being paid"):
        orders.hold(store, order.id, ALICE, "2" * 32)
    with pytest.raises(Conflict, match="being paid"):
        orders.hold(store, order.id, ALICE, None)


def test_payments_releases_only_its_own_hold_and_an_operator_any(store):
    order = reserve(store)
    orders.hold(store, order.id, ALICE, "1" * 32)
    assert orders.release_by(store, order.id, "2" * 32).status == "awaiting:payment"
    assert orders.release_by(store, order.id, None).status == "awaiting:payment"  # no holder is no one's
    assert orders.release_by(store, order.id, "1" * 32).status == "created"
    orders.hold(store, order.id, ALICE, "3" * 32)
    assert orders.release_any(store, order.id).status == "created"  # the operator's release
    assert orders.release_any(store, order.id).version == 4  # nothing held: nothing to do


def test_a_payment_for_a_cancelled_order_leaves_it_cancelled(store):
    order = reserve(store)
    orders.cancel_for_buyer(store, ALICE, order.id)
    assert in_tx(store, orders.complete, order.id).status == "cancelled"
    assert names(store) == [events.ORDER_CREATED, events.ORDER_CANCELLED]


def test_operators_find_orders_by_user_and_status_newest_first(store):
    first = reserve(store)
    orders.cancel_for_buyer(store, ALICE, first.id)
    second = reserve(store, BOB)
    assert [o["id"] for o in orders.search(store, None, None, 50)] == [second.id, first.id]
    assert [o["id"] for o in orders.search(store, ALICE, None, 50)] == [first.id]
    assert [o["id"] for o in orders.search(store, None, "created", 50)] == [second.id]
    assert orders.search(store, ALICE, "created", 50) == []
    assert len(orders.search(store, None, None, 1)) == 1
    with pytest.raises(BadRequest):
        orders.search(store, None, "lost", 50)


def test_count_by_status_names_every_status(store):
    reserve(store)
    assert orders.count_by_status(store) == {"created": 1, "awaiting:payment": 0, "complete": 0, "cancelled": 0}
