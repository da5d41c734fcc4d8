"""The order state machine and rules, without a database: the transition table row by row, the
refusals (the very 409s the API gives), and every status reachable from a new order."""
from datetime import timedelta
from decimal import Decimal
from itertools import product

import pytest

from services.common import events
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.handlers import NotYetApplicable
from services.orders import domain
from services.orders.domain import (ACTIONS, CANCEL, EXPIRE, HOLD, PAY, REFUSED, RELEASE, RELEASE_EXPIRED,
                                    TRANSITIONS, UNCHANGED, Transition)
from services.orders.models import AWAITING_PAYMENT, CANCELLED, COMPLETE, CREATED, STATUSES, Order, TicketReplica

SELLER, ALICE, BOB = "5" * 32, "a" * 32, "b" * 32
NOW = events.utcnow()


def an_order(status=CREATED, expires_in=60, held_by=None, version=0) -> Order:
    ticket = TicketReplica(id="7" * 32, title="Concert", price=Decimal("12.50"), user_id=SELLER, version=0)
    order = Order(id="1" * 32, user_id=ALICE, user_email="alice@example.com", ticket_id=ticket.id, status=status,
                  price=ticket.price, expires_at=NOW + timedelta(seconds=expires_in), created_at=NOW,
                  held_by=held_by, version=version)
    order.ticket = ticket
    return order


# -- the table -----------------------------------------------------------------

EXPECTED_ROWS = [
    # from, action -> to, event
    (CREATED, HOLD, AWAITING_PAYMENT, None),
    (CREATED, CANCEL, CANCELLED, events.ORDER_CANCELLED),
    (CREATED, EXPIRE, CANCELLED, events.ORDER_CANCELLED),
    (CREATED, PAY, COMPLETE, events.ORDER_COMPLETED),
    (AWAITING_PAYMENT, RELEASE, CREATED, None),
    (AWAITING_PAYMENT, RELEASE_EXPIRED, CANCELLED, events.ORDER_CANCELLED),
    (AWAITING_PAYMENT, PAY, COMPLETE, events.ORDER_COMPLETED),
]


def test_the_table_is_exactly_these_rows():
    assert [(t.source, t.action, t.target, t.event) for t in TRANSITIONS] == EXPECTED_ROWS


@pytest.mark.parametrize("source, action, target, event", EXPECTED_ROWS)
def test_each_row_moves_the_order_and_names_its_event(source, action, target, event):
    transition = domain.step(source, action)
    assert (transition.target, transition.event) == (target, event)
    order = an_order(source)
    domain.move(order, transition)
    assert order.status == target
    order.version = 1  # as saving it would
    announced = domain.announcement(transition, order)
    if event is None:
        assert announced is None  # created <-> awaiting:payment stays inside orders
    else:
        name, payload = announced
        assert name == event and payload["id"] == order.id and payload["version"] == 1
        events.new_event(name, **payload)  # the payload the contract declares for it


def test_every_status_and_action_has_exactly_one_answer():
    moves = {(t.source, t.action) for t in TRANSITIONS}
    assert len(moves) == len(TRANSITIONS)
    for pair in product(STATUSES, ACTIONS):
        assert [pair in moves, pair in REFUSED, pair in UNCHANGED].count(True) == 1, pair


@pytest.mark.parametrize("status, action, message", [
    (AWAITING_PAYMENT, CANCEL, "Order is being paid"),
    (COMPLETE, CANCEL, "Cannot cancel a completed order"),
    (AWAITING_PAYMENT, HOLD, "Order is being paid"),
    (COMPLETE, HOLD, "Order is already paid"),
    (CANCELLED, HOLD, "Order is cancelled"),
])
def test_an_illegal_move_is_the_409_the_api_gives(status, action, message):
    assert REFUSED[status, action] == message
    with pytest.raises(Conflict) as refused:
        domain.step(status, action)
    assert (refused.value.status, refused.value.message) == (409, message)


@pytest.mark.parametrize("status, action", sorted(UNCHANGED))
def test_a_repeat_or_a_late_action_changes_nothing(status, action):
    assert domain.step(status, action) is None


def test_expiry_is_never_refused_so_a_conditional_update_that_changes_nothing_is_right():
    assert domain.expiry() == domain.step(CREATED, EXPIRE)
    assert not [pair for pair in REFUSED if pair[1] == EXPIRE]


def test_a_move_from_another_status_is_a_bug_not_a_move():
    with pytest.raises(ValueError):
        domain.move(an_order(COMPLETE), domain.step(CREATED, CANCEL))
    with pytest.raises(ValueError):
        domain.step(CREATED, "refund")


def test_every_status_is_reachable_from_a_new_order():
    reached, frontier = {CREATED}, [CREATED]
    while frontier:
        status = frontier.pop()
        for transition in TRANSITIONS:
            if transition.source == status and transition.target not in reached:
                reached.add(transition.target)
                frontier.append(transition.target)
    assert reached == set(STATUSES)


def test_only_moves_to_cancelled_and_complete_are_announced():
    announced = {t.target for t in TRANSITIONS if t.event}
    assert announced == {CANCELLED, COMPLETE}
    assert {t.event for t in TRANSITIONS if t.target == CANCELLED} == {events.ORDER_CANCELLED}


# -- the checks before the table ---------------------------------------------------

def test_only_the_buyer_passes_the_owner_check():
    order = an_order()
    assert domain.check_owner(order, ALICE) is order
    with pytest.raises(Forbidden, match="This order is not yours"):
        domain.check_owner(order, BOB)


def test_hold_rules():
    assert domain.hold(an_order(), "1" * 32, NOW) == Transition(CREATED, HOLD, AWAITING_PAYMENT, None)
    with pytest.raises(Conflict, match="Order has expired"):
        domain.hold(an_order(expires_in=0), "1" * 32, NOW)
    held = an_order(AWAITING_PAYMENT, held_by="1" * 32)
    assert domain.hold(held, "1" * 32, NOW) is None  # the same attempt again: the hold it has
    for other in ("2" * 32, None):
        with pytest.raises(Conflict, match="Order is being paid"):
            domain.hold(held, other, NOW)


def test_release_rules():
    held = an_order(AWAITING_PAYMENT, held_by="1" * 32)
    assert domain.release_by(held, "2" * 32, NOW) is None  # another attempt's hold
    assert domain.release_by(held, "1" * 32, NOW).target == CREATED
    assert domain.release(held, NOW).target == CREATED  # anyone's (operators, the timer)
    assert domain.release(held, NOW + timedelta(seconds=60)).target == CANCELLED  # expired meanwhile
    assert domain.release_by(an_order(AWAITING_PAYMENT), "2" * 32, NOW).target == CREATED  # held by nobody
    assert domain.release_by(an_order(CREATED), "1" * 32, NOW) is None


def test_payment_and_cancellation_rules():
    assert domain.payment(an_order(AWAITING_PAYMENT)).target == COMPLETE
    assert domain.payment(an_order(CANCELLED)) is None  # stays cancelled: payments refunds it
    assert domain.cancellation(an_order()).target == CANCELLED
    assert domain.cancellation(an_order(CANCELLED)) is None


def test_a_new_order_and_its_event():
    ticket = an_order().ticket
    order = domain.new_order(ALICE, "alice@example.com", ticket, 900, NOW)
    assert (order.status, order.price, order.expires_at) == (CREATED, Decimal("12.50"), NOW + timedelta(seconds=900))
    with pytest.raises(NotFound, match="Ticket not found"):
        domain.new_order(ALICE, "alice@example.com", None, 900, NOW)
    with pytest.raises(Conflict, match="You cannot buy your own ticket"):
        domain.new_order(SELLER, "seller@example.com", ticket, 900, NOW)
    order.id, order.version = "1" * 32, 0
    payload = domain.creation(order)
    assert payload["ticket"] == {"id": ticket.id, "price": Decimal("12.50")}
    events.new_event(events.ORDER_CREATED, **payload)


def test_the_replica_takes_a_newer_version_and_a_ticket_starts_at_v0():
    def changed(version):
        return events.parse(events.TICKET_UPDATED, events.new_event(
            events.TICKET_UPDATED, id="7" * 32, version=version, title="T", price=Decimal("1"), userId=SELLER))

    assert domain.replica_update(None, changed(0))
    with pytest.raises(NotYetApplicable):
        domain.replica_update(None, changed(1))
    replica = an_order().ticket  # at v0
    assert domain.replica_update(replica, changed(1))
    assert not domain.replica_update(replica, changed(0))
    # an event carries the ticket's whole state: a later one need not wait for the ones between
    assert domain.replica_update(replica, changed(2))


def test_a_ticket_update_that_changes_nothing_kept_is_not_news():
    replica = an_order().ticket  # v0: Concert, 12.50, SELLER

    def changed(version, title="Concert", price="12.50", seller=SELLER):
        return events.parse(events.TICKET_UPDATED, events.new_event(
            events.TICKET_UPDATED, id=replica.id, version=version, title=title, price=Decimal(price), userId=seller))

    assert not domain.is_news(replica, changed(1))  # reserved or released: the same title, price, seller
    assert domain.is_news(replica, changed(2, price="15.00")) and domain.is_news(replica, changed(3, title="Opera"))
    assert not domain.is_news(replica, changed(0, price="1.00"))  # stale
    assert domain.is_news(None, changed(0))  # not seen yet: only applying tells
