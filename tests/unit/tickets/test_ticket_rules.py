from decimal import Decimal

import pytest

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.tickets import domain, repository
from services.tickets import service_layer

ALICE, BOB, ORDER = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
def tx(make_store):
    return make_store("tickets").begin()


@pytest.fixture
def session(tx):
    return tx.session


def test_listing_a_ticket_emits_created_in_the_same_transaction(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", Decimal("10"))
    assert ticket.version == 0 and ticket.price == Decimal("10.00")
    assert tx.emitted == [(events.TICKET_CREATED, tx.emitted[0][1])]
    assert tx.emitted[0][1]["price"] == "10.00"


def test_only_the_owner_edits(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    with pytest.raises(Forbidden):
        service_layer.edit_ticket(tx, ticket.id, BOB, "Mine", 1)


def test_a_reserved_ticket_cannot_be_edited(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.reserve(tx, ticket.id, ORDER)
    with pytest.raises(Conflict, match="Cannot edit a reserved ticket"):
        service_layer.edit_ticket(tx, ticket.id, ALICE, "Show", 11)


def test_every_change_bumps_the_version_and_announces_it(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.edit_ticket(tx, ticket.id, ALICE, "Show 2", 11)
    service_layer.reserve(tx, ticket.id, ORDER)
    service_layer.release_all(tx, [(ticket.id, ORDER)])
    assert ticket.version == 3
    assert [(name, payload["version"]) for name, payload in tx.emitted] == [
        (events.TICKET_CREATED, 0), (events.TICKET_UPDATED, 1), (events.TICKET_UPDATED, 2),
        (events.TICKET_UPDATED, 3)]


def test_release_by_another_order_or_after_sale_changes_nothing(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.reserve(tx, ticket.id, ORDER)
    service_layer.release_all(tx, [(ticket.id, "d" * 32)])
    assert ticket.order_id == ORDER
    service_layer.mark_sold(tx, ticket.id, ORDER)
    service_layer.release_all(tx, [(ticket.id, ORDER)])
    assert ticket.order_id == ORDER and ticket.sold_at is not None


def test_invalid_input_and_unknown_ids(tx):
    with pytest.raises(BadRequest):
        service_layer.list_ticket(tx, ALICE, "", 10)
    with pytest.raises(NotFound):
        repository.find(tx.session, "nope")
    with pytest.raises(NotFound):
        repository.find(tx.session, "f" * 32)
    with pytest.raises(NotFound):
        service_layer.ticket_view(tx.session, "nope")
    with pytest.raises(NotFound):
        service_layer.ticket_view(tx.session, "f" * 32)


def test_the_read_view_is_the_tickets_dict(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", Decimal("12.5"))
    service_layer.reserve(tx, ticket.id, ORDER)
    tx.session.flush()
    assert service_layer.ticket_view(tx.session, ticket.id) == ticket.to_dict()


def test_paging_newest_first_skips_reserved_and_rejects_bad_cursors(session, tx):
    tickets = [service_layer.list_ticket(tx, ALICE, f"T{n}", 1) for n in range(5)]
    service_layer.reserve(tx, tickets[2].id, ORDER)
    session.commit()
    page, cursor = service_layer.page_on_sale(session, limit=2)
    rest, last = service_layer.page_on_sale(session, limit=2, cursor=cursor)
    assert [t["title"] for t in page + rest] == ["T4", "T3", "T1", "T0"] and last is None
    assert page[0] == tickets[4].to_dict()
    with pytest.raises(BadRequest):
        service_layer.page_on_sale(session, cursor="!!not-a-cursor")


def test_a_redelivered_create_returns_the_first_ticket(tx):
    first = service_layer.list_ticket(tx, ALICE, "Show", 10, request_id="req-1")
    again = service_layer.list_ticket(tx, ALICE, "Show", 10, request_id="req-1")
    assert again.id == first.id and len(tx.outbox_rows) == 1


# -- order events in any order -------------------------------------------------------

OTHER = "d" * 32


def test_a_cancellation_before_its_creation_never_leaves_the_ticket_reserved(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.release_all(tx, [(ticket.id, ORDER)])  # order:cancelled overtook order:created
    service_layer.reserve(tx, ticket.id, ORDER)
    assert ticket.order_id is None and ticket.version == 0
    service_layer.reserve(tx, ticket.id, OTHER)  # the next buyer's order still gets it
    assert ticket.order_id == OTHER


def test_a_ticket_held_by_another_order_waits_for_that_orders_cancellation(tx):
    from services.common.handlers import NotYetApplicable

    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.reserve(tx, ticket.id, ORDER)
    with pytest.raises(NotYetApplicable):
        service_layer.reserve(tx, ticket.id, OTHER)  # not overwritten
    assert ticket.order_id == ORDER
    service_layer.release_all(tx, [(ticket.id, ORDER)])
    service_layer.reserve(tx, ticket.id, OTHER)  # the retry, after ORDER's cancellation
    assert ticket.order_id == OTHER


def test_a_sold_ticket_is_not_reserved_again(tx):
    ticket = service_layer.list_ticket(tx, ALICE, "Show", 10)
    service_layer.reserve(tx, ticket.id, ORDER)
    service_layer.mark_sold(tx, ticket.id, ORDER)
    service_layer.reserve(tx, ticket.id, OTHER)
    assert ticket.order_id == ORDER and ticket.sold_at is not None


def test_the_rules_need_no_database():
    from services.common.handlers import NotYetApplicable
    from services.tickets.models import Ticket

    now = events.utcnow()
    ticket = domain.new_ticket(ALICE, "Show", "10", None, now)
    ticket.id = "e" * 32  # given when it is inserted
    assert ticket.version == 0 and ticket.order_id is None
    assert domain.reserve(ticket, ORDER, cancelled=True) is False and ticket.order_id is None
    assert domain.reserve(ticket, ORDER, cancelled=False) is True and ticket.order_id == ORDER
    assert domain.reserve(ticket, ORDER, cancelled=False) is False  # a redelivery
    with pytest.raises(NotYetApplicable):
        domain.reserve(ticket, OTHER, cancelled=False)
    assert domain.release(ticket, {OTHER: ticket.id}) is None
    assert domain.release(ticket, {ORDER: ticket.id}) == ORDER and ticket.order_id is None
    assert domain.sell(ticket, ORDER, now) is True and ticket.order_id == ORDER
    assert domain.sell(ticket, ORDER, now) is False
    with pytest.raises(Conflict):
        domain.repeated(Ticket(user_id=ALICE), BOB)
