"""Order rules as plain functions on a real (SQLite) session, with the outbox replaced by a list."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.common.migrations import upgrade
from services.common.store import configure_engine
from services.orders import domain
from services.orders.models import Order, TicketReplica

SELLER, ALICE, BOB = "5" * 32, "a" * 32, "b" * 32
TICKET = "7" * 32


class FakeTx:
    """A transaction whose outbox is a list (payloads still validated by the event contract)."""

    def __init__(self, session):
        self.session = session
        self.emitted = []

    def emit(self, name, **data):
        payload = events.new_event(name, **data)
        self.emitted.append((name, payload))
        return payload


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    configure_engine(engine)
    upgrade("orders", engine)  # the real migration, partial unique index included
    return engine


@pytest.fixture
def tx(engine):
    with Session(engine, expire_on_commit=False) as session:
        session.add(TicketReplica(id=TICKET, title="Concert", price=Decimal("12.50"), user_id=SELLER, version=0))
        session.commit()
        yield FakeTx(session)


def ticket_event(version, title="Concert", price="12.50", ticket_id=TICKET):
    return events.parse(events.TICKET_UPDATED, events.new_event(
        events.TICKET_UPDATED, id=ticket_id, version=version, title=title, price=Decimal(price), userId=SELLER))


def reserve(tx, user=ALICE, window=60):
    return domain.reserve_ticket(tx, user, f"{user[:4]}@example.com", TICKET, window)


def test_reserve_sets_expiry_and_emits_order_created(tx):
    before = events.utcnow()
    order = reserve(tx, window=900)
    assert order.status == "created" and order.version == 0
    assert timedelta(seconds=899) < order.expires_at - before < timedelta(seconds=901)
    assert order.to_dict()["ticket"] == {"id": TICKET, "title": "Concert", "price": "12.50"}
    assert order.to_dict()["expiresAt"].endswith("Z")
    (name, payload), = tx.emitted
    assert name == events.ORDER_CREATED
    assert payload["userEmail"] == "aaaa@example.com" and payload["ticket"] == {"id": TICKET, "price": "12.50"}
    assert payload["expiresAt"] == order.to_dict()["expiresAt"]


def test_reserve_rules(tx):
    with pytest.raises(BadRequest) as bad:
        domain.reserve_ticket(tx, ALICE, "a@example.com", "not-an-id", 60)
    assert bad.value.field == "ticketId"
    with pytest.raises(NotFound):
        domain.reserve_ticket(tx, ALICE, "a@example.com", "f" * 32, 60)
    with pytest.raises(Conflict, match="You cannot buy your own ticket"):
        domain.reserve_ticket(tx, SELLER, "s@example.com", TICKET, 60)


def test_a_reserved_ticket_cannot_be_ordered_again_until_cancelled(tx):
    first = reserve(tx)
    tx.session.commit()
    with pytest.raises(Conflict, match="Ticket is already reserved"):
        reserve(tx, BOB)
    tx.session.rollback()
    domain.cancel_order(tx, first.id, ALICE)
    tx.session.commit()
    assert reserve(tx, BOB).status == "created"


def test_cancel_rules(tx):
    order = reserve(tx)
    with pytest.raises(Forbidden):
        domain.cancel_order(tx, order.id, BOB)
    with pytest.raises(NotFound):
        domain.cancel_order(tx, "nope", ALICE)
    cancelled = domain.cancel_order(tx, order.id, ALICE)
    assert cancelled.status == "cancelled" and cancelled.version == 1
    assert tx.emitted[-1][0] == events.ORDER_CANCELLED and tx.emitted[-1][1]["version"] == 1
    again = domain.cancel_order(tx, order.id, ALICE)  # a no-op
    assert again.version == 1 and len(tx.emitted) == 2


def test_complete_order_cannot_be_cancelled_nor_expired(tx):
    order = reserve(tx)
    domain.complete(tx, order.id)
    assert order.status == "complete" and order.version == 1
    name, payload = tx.emitted[-1]
    assert name == events.ORDER_COMPLETED and payload["ticket"]["title"] == "Concert"
    with pytest.raises(Conflict):
        domain.cancel_order(tx, order.id, ALICE)
    with pytest.raises(Conflict):
        domain.cancel_order(tx, order.id)  # operator
    assert not domain.expire(tx, order.id)
    tx.session.refresh(order)
    assert order.status == "complete"
    domain.complete(tx, order.id)  # a second payment:created: nothing more
    assert order.version == 1 and len(tx.emitted) == 2


def test_show_is_for_the_owner_and_list_is_oldest_first(tx, engine):
    first = reserve(tx)
    with pytest.raises(Forbidden):
        domain.show_order(tx.session, first.id, BOB)
    domain.cancel_order(tx, first.id, ALICE)
    second = reserve(tx)
    tx.session.commit()
    assert [o.id for o in domain.orders_of(tx.session, ALICE)] == [first.id, second.id]
    assert domain.orders_of(tx.session, BOB) == []


def test_hold_for_payment_and_release(tx):
    order = reserve(tx)
    with pytest.raises(Forbidden):
        domain.hold_for_payment(tx, order.id, BOB)
    held = domain.hold_for_payment(tx, order.id, ALICE)
    assert held["status"] == "awaiting:payment" and held["amountCents"] == 1250 and held["version"] == 1
    with pytest.raises(Conflict, match="Order is being paid"):
        domain.hold_for_payment(tx, order.id, ALICE)
    # expiry and the buyer's cancel both wait for the payment to finish
    assert not domain.expire(tx, order.id)
    with pytest.raises(Conflict, match="Order is being paid"):
        domain.cancel_order(tx, order.id, ALICE)
    released = domain.release_hold(tx, order.id)
    assert released.status == "created" and released.version == 2
    assert [name for name, _ in tx.emitted] == [events.ORDER_CREATED]


def test_release_after_expiry_cancels(tx):
    order = reserve(tx, window=60)
    domain.hold_for_payment(tx, order.id, ALICE)
    later = order.expires_at + timedelta(seconds=1)
    assert domain.release_hold(tx, order.id, now=later).status == "cancelled"
    assert tx.emitted[-1][0] == events.ORDER_CANCELLED


def test_hold_refuses_expired_cancelled_and_paid_orders(tx):
    order = reserve(tx, window=60)
    with pytest.raises(Conflict, match="Order has expired"):
        domain.hold_for_payment(tx, order.id, ALICE, now=order.expires_at)
    domain.cancel_order(tx, order.id, ALICE)
    with pytest.raises(Conflict, match="Order is cancelled"):
        domain.hold_for_payment(tx, order.id, ALICE)
    paid = reserve(tx, BOB)
    domain.complete(tx, paid.id)
    with pytest.raises(Conflict, match="Order is already paid"):
        domain.hold_for_payment(tx, paid.id, BOB)


def test_expire_cancels_only_created_orders(tx):
    order = reserve(tx)
    later = order.expires_at + timedelta(milliseconds=1)
    assert domain.expire(tx, order.id, now=later)
    assert not domain.expire(tx, order.id, now=later)  # a second expiration:complete: nothing
    tx.session.refresh(order)
    assert (order.status, order.version) == ("cancelled", 1)
    name, payload = tx.emitted[-1]
    assert name == events.ORDER_CANCELLED and payload["version"] == 1 and payload["ticket"] == {"id": TICKET}
    assert len(tx.emitted) == 2
    assert not domain.expire(tx, "f" * 32) and not domain.expire(tx, "bad")  # unknown order: dropped


def test_sweeps_find_overdue_orders_and_stale_holds(tx):
    order = reserve(tx, window=1)
    now = order.expires_at + timedelta(seconds=11)
    assert domain.overdue_ids(tx.session, 10, now=now) == [order.id]
    assert domain.overdue_ids(tx.session, 10, now=order.expires_at + timedelta(seconds=5)) == []
    domain.hold_for_payment(tx, order.id, ALICE, now=order.expires_at - timedelta(milliseconds=500))
    assert domain.overdue_ids(tx.session, 10, now=now) == []
    assert domain.stale_hold_ids(tx.session, 120, now=now + timedelta(seconds=120)) == [order.id]
    assert domain.stale_hold_ids(tx.session, 120, now=now) == []


def test_replica_takes_the_newest_version_and_drops_older_ones(tx):
    # an event carries the ticket's whole state: v2 before v1 is applied, and v1 is stale then
    assert domain.apply_ticket(tx, ticket_event(2, title="v2", price="20")).price == Decimal("20.00")
    assert domain.apply_ticket(tx, ticket_event(1, title="v1")) is None
    assert domain.apply_ticket(tx, ticket_event(2, title="again")) is None  # duplicate version: dropped
    assert domain.apply_ticket(tx, ticket_event(0)) is None  # stale
    replica = tx.session.get(TicketReplica, TICKET)
    assert (replica.version, replica.title, replica.price) == (2, "v2", Decimal("20.00"))


def test_a_ticket_update_that_changes_nothing_kept_is_not_news(tx):
    echo = ticket_event(1)  # the ticket reserved or released: same title, price and seller
    repriced, retitled = ticket_event(2, price="15.00"), ticket_event(3, title="Opera")
    stale, unknown = ticket_event(0, price="1.00"), ticket_event(0, ticket_id="8" * 32)
    assert domain.replica_news(tx.session, [echo, repriced, retitled, stale, unknown]) == [repriced, retitled,
                                                                                            unknown]
    domain.apply_ticket(tx, repriced)  # after skipped echoes: applied all the same
    assert tx.session.get(TicketReplica, TICKET).price == Decimal("15.00")


def test_replica_is_created_from_v0_only(tx):
    new_ticket = "8" * 32
    with pytest.raises(NotYetApplicable):
        domain.apply_ticket(tx, ticket_event(1, ticket_id=new_ticket))
    assert domain.apply_ticket(tx, ticket_event(0, ticket_id=new_ticket)).version == 0


def test_a_concurrent_change_is_refused_not_overwritten(tx, engine):
    order = reserve(tx)
    tx.session.commit()
    with Session(engine) as other:
        theirs = other.get(Order, order.id)
        theirs.status = "cancelled"
        other.commit()
    order.status = "complete"
    with pytest.raises(Conflict):
        domain._move(tx, order, "complete")


def test_an_early_expiration_does_not_cancel_an_order_whose_time_is_not_up(tx):
    order = reserve(tx, window=60)
    assert not domain.expire(tx, order.id, now=order.expires_at - timedelta(seconds=1))
    tx.session.refresh(order)
    assert order.status == "created" and len(tx.emitted) == 1
    assert domain.expire(tx, order.id, now=order.expires_at)


def test_the_order_keeps_the_price_it_was_reserved_at(tx):
    order = reserve(tx)
    domain.apply_ticket(tx, ticket_event(1, price="99.00"))  # the seller reprices before tickets saw the order
    assert order.to_dict()["ticket"]["price"] == "12.50"
    assert domain.hold_for_payment(tx, order.id, ALICE)["amountCents"] == 1250
    domain.complete(tx, order.id)
    name, payload = tx.emitted[-1]
    assert name == events.ORDER_COMPLETED and payload["ticket"]["price"] == "12.50"
    assert tx.emitted[0][1]["ticket"]["price"] == "12.50"


def test_the_same_holder_gets_its_hold_again_and_anyone_else_409(tx):
    order = reserve(tx)
    first = domain.hold_for_payment(tx, order.id, ALICE, holder="1" * 32)
    assert domain.hold_for_payment(tx, order.id, ALICE, holder="1" * 32) == first  # a redelivered request
    with pytest.raises(Conflict, match="being paid"):
        domain.hold_for_payment(tx, order.id, ALICE, holder="2" * 32)
    with pytest.raises(Conflict, match="being paid"):
        domain.hold_for_payment(tx, order.id, ALICE)


def test_only_the_holder_or_an_operator_releases_a_hold(tx):
    order = reserve(tx)
    domain.hold_for_payment(tx, order.id, ALICE, holder="1" * 32)
    assert domain.release_hold(tx, order.id, holder="2" * 32).status == "awaiting:payment"
    assert domain.release_hold(tx, order.id, holder="1" * 32).status == "created"
    domain.hold_for_payment(tx, order.id, ALICE, holder="3" * 32)
    assert domain.release_hold(tx, order.id).status == "created"  # the operator's release


def test_a_payment_for_a_cancelled_order_leaves_it_cancelled(tx):
    order = reserve(tx)
    domain.cancel_order(tx, order.id, ALICE)
    assert domain.complete(tx, order.id).status == "cancelled"
    assert [name for name, _ in tx.emitted] == [events.ORDER_CREATED, events.ORDER_CANCELLED]
