from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.common import events


def test_every_event_has_a_source_and_a_payload_model():
    assert set(events.SOURCE) == set(events.PAYLOADS)


def test_new_event_carries_an_id_a_time_and_exact_money():
    one = events.new_event(events.TICKET_CREATED, id="t", version=0, title="x", price=Decimal("12.5"),
                           userId="u", orderId=None)
    two = events.new_event(events.TICKET_CREATED, id="t", version=0, title="x", price=Decimal("12.5"),
                           userId="u", orderId=None)
    assert one["eventId"] != two["eventId"]
    assert one["occurredAt"].endswith("Z") and one["price"] == "12.50"
    assert events.parse(events.TICKET_CREATED, one).price == Decimal("12.50")


def test_a_payload_missing_a_field_is_refused():
    with pytest.raises(ValidationError):
        events.new_event(events.ORDER_CANCELLED, id="o", version=1)  # no ticket
    with pytest.raises(ValidationError):
        events.parse(events.PAYMENT_CREATED, {"eventId": "e", "occurredAt": "t", "id": "p"})
