"""The event contract: names and payloads of every event (docs/contract.md), in one module.

Every event is a flat JSON object: the payload of the original system plus
``eventId`` (unique) and ``occurredAt`` (ISO 8601 UTC). Entity events carry the
entity's ``version``. Money travels as a decimal string ("12.50"), never a float.

Events are published on the nameko exchange of the service that owns the
entity (``<service>.events``, routing key = event name), so nameko's
``event_handler(SOURCE[name], name)`` receives them.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, field_serializer

from .validation import new_id

TICKET_CREATED = "ticket:created"
TICKET_UPDATED = "ticket:updated"
ORDER_CREATED = "order:created"
ORDER_CANCELLED = "order:cancelled"
ORDER_COMPLETED = "order:completed"
EXPIRATION_COMPLETE = "expiration:complete"
PAYMENT_CREATED = "payment:created"

#: which service publishes each event (the nameko exchange it goes out on)
SOURCE = {
    TICKET_CREATED: "tickets",
    TICKET_UPDATED: "tickets",
    ORDER_CREATED: "orders",
    ORDER_CANCELLED: "orders",
    ORDER_COMPLETED: "orders",
    EXPIRATION_COMPLETE: "expiration",
    PAYMENT_CREATED: "payments",
}


def utcnow() -> datetime:
    """Now, as an aware UTC datetime: the one clock of every service (events, rows, leases)."""
    return datetime.now(timezone.utc)


def isoformat(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as JavaScript writes it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    eventId: str
    occurredAt: str


class _Money(BaseModel):
    @field_serializer("price", check_fields=False)
    def _money(self, price: Decimal) -> str:
        return f"{price:.2f}"


class TicketChanged(Event, _Money):
    id: str
    version: int
    title: str
    price: Decimal
    userId: str
    orderId: str | None = None


class TicketRef(BaseModel):
    id: str


class PricedTicketRef(_Money):
    id: str
    price: Decimal


class TicketSummary(_Money):
    id: str
    title: str
    price: Decimal


class OrderCreated(Event):
    id: str
    version: int
    status: str
    userId: str
    userEmail: str
    expiresAt: str
    ticket: PricedTicketRef


class OrderCancelled(Event):
    id: str
    version: int
    ticket: TicketRef


class OrderCompleted(Event):
    id: str
    version: int
    userId: str
    userEmail: str
    ticket: TicketSummary


class ExpirationComplete(Event):
    orderId: str


class PaymentCreated(Event):
    id: str
    orderId: str
    chargeId: str


PAYLOADS: dict[str, type[Event]] = {
    TICKET_CREATED: TicketChanged,
    TICKET_UPDATED: TicketChanged,
    ORDER_CREATED: OrderCreated,
    ORDER_CANCELLED: OrderCancelled,
    ORDER_COMPLETED: OrderCompleted,
    EXPIRATION_COMPLETE: ExpirationComplete,
    PAYMENT_CREATED: PaymentCreated,
}


def new_event(name: str, **data) -> dict:
    """Build and validate the JSON payload of a new event called ``name``."""
    model = PAYLOADS[name](eventId=new_id(), occurredAt=isoformat(utcnow()), **data)
    return model.model_dump(mode="json")


def parse(name: str, payload: dict) -> Event:
    """Validate an incoming payload of event ``name`` into its model."""
    return PAYLOADS[name].model_validate(payload)
