from decimal import Decimal

import pytest

from services.common import events
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.tickets import domain

ALICE, BOB, ORDER = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
def tx(make_store):
    return make_store("tickets").begin()


@pytest.fixture
def session(tx):
    return tx.session


def test_listing_a_ticket_emits_created_in_the_same_transaction(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", Decimal("10"))
    assert ticket.version == 0 and ticket.price == Decimal("10.00")
    assert tx.emitted == [(events.TICKET_CREATED, tx.emitted[0][1])]
    assert tx.emitted[0][1]["price"] == "10.00"


def test_only_the_owner_edits(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    with pytest.raises(Forbidden):
        domain.edit_ticket(tx, ticket.id, BOB, "Mine", 1)


def test_a_reserved_ticket_cannot_be_edited(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.reserve(tx, ticket.id, ORDER)
    with pytest.raises(Conflict, match="Cannot edit a reserved ticket"):
        domain.edit_ticket(tx, ticket.id, ALICE, "Show", 11)


def test_every_change_bumps_the_version_and_announces_it(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.edit_ticket(tx, ticket.id, ALICE, "Show 2", 11)
    domain.reserve(tx, ticket.id, ORDER)
    domain.release(tx, ticket.id, ORDER)
    assert ticket.version == 3
    assert [(name, payload["version"]) for name, payload in tx.emitted] == [
        (events.TICKET_CREATED, 0), (events.TICKET_UPDATED, 1), (events.TICKET_UPDATED, 2),
        (events.TICKET_UPDATED, 3)]


def test_release_by_another_order_or_after_sale_changes_nothing(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.reserve(tx, ticket.id, ORDER)
    domain.release(tx, ticket.id, "d" * 32)
    assert ticket.order_id == ORDER
    domain.mark_sold(tx, ticket.id, ORDER)
    domain.release(tx, ticket.id, ORDER)
    assert ticket.order_id == ORDER and ticket.sold_at is not None


def test_invalid_input_and_unknown_ids(tx):
    with pytest.raises(BadRequest):
        domain.list_ticket(tx, ALICE, "", 10)
    with pytest.raises(NotFound):
        domain.find(tx.session, "nope")
    with pytest.raises(NotFound):
        domain.find(tx.session, "f" * 32)
    with pytest.raises(NotFound):
        domain.ticket_view(tx.session, "nope")
    with pytest.raises(NotFound):
        domain.ticket_view(tx.session, "f" * 32)


def test_the_read_view_is_the_tickets_dict(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", Decimal("12.5"))
    domain.reserve(tx, ticket.id, ORDER)
    tx.session.flush()
    assert domain.ticket_view(tx.session, ticket.id) == ticket.to_dict()


def test_paging_newest_first_skips_reserved_and_rejects_bad_cursors(session, tx):
    tickets = [domain.list_ticket(tx, ALICE, f"T{n}", 1) for n in range(5)]
    domain.reserve(tx, tickets[2].id, ORDER)
    session.commit()
    page, cursor = domain.page_on_sale(session, limit=2)
    rest, last = domain.page_on_sale(session, limit=2, cursor=cursor)
    assert [t["title"] for t in page + rest] == ["T4", "T3", "T1", "T0"] and last is None
    assert page[0] == tickets[4].to_dict()
    with pytest.raises(BadRequest):
        domain.page_on_sale(session, cursor="!!not-a-cursor")


def test_a_redelivered_create_returns_the_first_ticket(tx):
    first = domain.list_ticket(tx, ALICE, "Show", 10, request_id="req-1")
    again = domain.list_ticket(tx, ALICE, "Show", 10, request_id="req-1")
    assert again.id == first.id and len(tx.outbox_rows) == 1


# -- order events in any order -------------------------------------------------------

OTHER = "d" * 32


def test_a_cancellation_before_its_creation_never_leaves_the_ticket_reserved(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.release(tx, ticket.id, ORDER)  # order:cancelled overtook order:created
    domain.reserve(tx, ticket.id, ORDER)
    assert ticket.order_id is None and ticket.version == 0
    domain.reserve(tx, ticket.id, OTHER)  # the next buyer's order still gets it
    assert ticket.order_id == OTHER


def test_a_ticket_held_by_another_order_waits_for_that_orders_cancellation(tx):
    from services.common.handlers import NotYetApplicable

    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.reserve(tx, ticket.id, ORDER)
    with pytest.raises(NotYetApplicable):
        domain.reserve(tx, ticket.id, OTHER)  # not overwritten
    assert ticket.order_id == ORDER
    domain.release(tx, ticket.id, ORDER)
    domain.reserve(tx, ticket.id, OTHER)  # the retry, after ORDER's cancellation
    assert ticket.order_id == OTHER


def test_a_sold_ticket_is_not_reserved_again(tx):
    ticket = domain.list_ticket(tx, ALICE, "Show", 10)
    domain.reserve(tx, ticket.id, ORDER)
    domain.mark_sold(tx, ticket.id, ORDER)
    domain.reserve(tx, ticket.id, OTHER)
    assert ticket.order_id == ORDER and ticket.sold_at is not None
