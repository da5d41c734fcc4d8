"""The life of a charge attempt as a table: every state reachable, every other move refused."""
from types import SimpleNamespace

import pytest

from services.common import events
from services.payments import repository
from services.payments.domain import IllegalTransition, OutcomeKind, State, Transition, _close, closing


def reachable() -> set[State]:
    """Every state a new attempt can get to by moves of the table."""
    seen: set[State] = set()
    frontier: list[State | None] = [None]
    while frontier:
        source = frontier.pop()
        for move in Transition:
            if move.source is source and move.target not in seen:
                seen.add(move.target)
                frontier.append(move.target)
    return seen


def moves(source, target) -> list[Transition]:
    return [t for t in Transition if (t.source, t.target) == (source, target)]


def test_every_state_of_the_table_is_reachable_from_a_new_attempt():
    assert reachable() == set(State)
    assert {t.target for t in Transition} | {t.source for t in Transition if t.source} == set(State)


def test_each_move_is_named_once_and_only_a_success_causes_an_event():
    assert len({(t.source, t.target) for t in Transition}) == len(Transition)
    assert {t: t.event for t in Transition if t.event} == {Transition.SUCCEED: events.PAYMENT_CREATED}
    assert moves(None, "holding") == [Transition.OPEN]
    assert moves("pending", "abandoned") == [Transition.ABANDON]


@pytest.mark.parametrize("source, target", [("succeeded", "pending"), ("declined", "succeeded"),
                                            ("holding", "succeeded"), ("abandoned", "failed"),
                                            ("dropped", "holding"), (None, "pending"), ("pending", "nonsense")])
def test_a_move_that_is_not_in_the_table_is_refused(source, target):
    assert moves(source, target) == []
    for move in Transition:  # no move that ends there starts from there
        if move.target == target:
            with pytest.raises(IllegalTransition):
                move.check(source)


def test_a_move_from_the_wrong_state_raises():
    with pytest.raises(IllegalTransition):
        Transition.DECLINE.check("succeeded")
    with pytest.raises(IllegalTransition):
        Transition.OPEN.check("holding")
    assert Transition.START.check("holding") is State.PENDING
    now = events.utcnow()
    with pytest.raises(IllegalTransition):  # only a pending attempt is closed by an outcome
        _close(SimpleNamespace(state="holding"), Transition.SUCCEED, now)
    with pytest.raises(IllegalTransition):
        _close(SimpleNamespace(state="pending"), Transition.START, now)
    assert _close(SimpleNamespace(state="pending"), Transition.DECLINE, now, message="no") == {
        "settled_at": now, "message": "no"}


@pytest.mark.parametrize("kind, first_send, abandon, move", [
    (OutcomeKind.PAID, False, False, Transition.SUCCEED),
    (OutcomeKind.DECLINED, False, True, Transition.DECLINE),
    (OutcomeKind.REFUSED, True, False, Transition.FAIL),
    (OutcomeKind.REFUSED, False, False, None),  # a refused replay says nothing about the first request
    (OutcomeKind.REFUSED, False, True, Transition.ABANDON),
    (OutcomeKind.UNKNOWN, True, False, None),
    (OutcomeKind.UNKNOWN, False, True, Transition.ABANDON),
])
def test_what_an_outcome_does_to_a_pending_attempt(kind, first_send, abandon, move):
    assert closing(kind, first_send=first_send, abandon=abandon) is move


def test_the_store_moves_an_attempt_only_from_where_the_move_starts(make_store):
    store = make_store("payments")
    with store.transaction() as tx:
        attempt = repository.add(tx, order_id="c" * 32, number=1, idempotency_key="order-c-1", token="tok_visa",
                               request=None, now=events.utcnow())
        tx.session.flush()
    assert attempt.state == "holding"
    with store.transaction() as tx:
        assert not repository.move(tx, attempt.id, Transition.SUCCEED)  # not pending: nothing changes
        assert repository.move(tx, attempt.id, Transition.DROP)
        assert not repository.move(tx, attempt.id, Transition.START)  # dropped meanwhile
    with store.read() as session:
        assert session.get(type(attempt), attempt.id).state == "dropped"
