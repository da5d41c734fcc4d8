"""The OpenAPI document says what the gateway does: the same routes, the limits its models enforce,
the shapes the services' answers have."""
import json
import re
from datetime import datetime
from decimal import Decimal

import pytest
from flask import jsonify

from gateway import openapi
from gateway.api import orders as order_routes
from gateway.api import tickets as ticket_routes
from gateway.api import users as user_routes
from gateway.http import present_order, present_ticket
from services.common.errors import BadRequest, Conflict
from services.common.validation import is_valid_id, validate
from services.orders.models import STATUSES, Order, TicketReplica
from services.tickets.models import Ticket

DOCUMENT = openapi.document()
SCHEMAS = DOCUMENT["components"]["schemas"]


def test_the_served_document_is_the_generated_one(client):
    assert json.loads(client.get("/api/openapi.json").data) == json.loads(json.dumps(DOCUMENT))


def test_every_served_route_is_documented_and_every_documented_route_is_served(app):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api"):
            path = re.sub(r"<(?:\w+:)?\w+>", "{id}", rule.rule)
            served |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method, path) for path, operations in DOCUMENT["paths"].items() for method in operations}
    assert served == documented


def test_every_reference_resolves():
    refs = set(re.findall(r"#/components/schemas/(\w+)", str(DOCUMENT)))
    assert refs <= set(SCHEMAS)


#: a valid body of each request schema
VALID = {
    "Credentials": {"email": "ann@example.com", "password": "secret-pass"},
    "SigninCredentials": {"email": "ann@example.com", "password": "secret-pass"},
    "TicketInput": {"title": "Show", "price": 10},
    "OrderInput": {"ticketId": "c" * 32},
    "PaymentInput": {"token": "tok_visa", "orderId": "d" * 32},
}


def accepts(name: str, field: str, value) -> bool:
    model, _ = openapi.MODELS[name]
    try:
        validate(model, {**VALID[name], field: value})
    except BadRequest:
        return False
    return True


def text_of(length: int, schema: dict) -> str:
    if schema.get("format") == "email":
        return "a" * (length - len("@example.com")) + "@example.com"
    return "x" * length


def limits() -> list:
    return [(name, field, schema) for name in VALID for field, schema in SCHEMAS[name]["properties"].items()]


def test_every_request_schema_is_documented_with_its_required_fields():
    for name in VALID:
        model, _ = openapi.MODELS[name]
        assert set(SCHEMAS[name]["required"]) == set(model.model_fields) == set(VALID[name])
        assert all(accepts(name, field, VALID[name][field]) for field in VALID[name])


@pytest.mark.parametrize("name, field, schema", limits(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_documented_limit_is_the_one_the_model_enforces(name, field, schema):
    checked = 0
    if "minLength" in schema:
        low = schema["minLength"]
        assert accepts(name, field, text_of(low, schema)) if low else True
        assert not accepts(name, field, text_of(low - 1, schema)) if low > 1 else not accepts(name, field, "")
        checked += 1
    if "maxLength" in schema:
        high = schema["maxLength"]
        assert accepts(name, field, text_of(high, schema))
        assert not accepts(name, field, text_of(high + 1, schema))
        checked += 1
    if "pattern" in schema:
        for sample in ("c" * 32, "C" * 32, "c" * 31, "c" * 33, "g" * 32, "c" * 31 + "\n"):
            documented = re.fullmatch(schema["pattern"], sample) is not None
            assert accepts(name, field, sample) == documented == is_valid_id(sample), sample
        checked += 1
    if "maximum" in schema:
        top = Decimal(str(schema["maximum"]))
        assert accepts(name, field, top) and not accepts(name, field, top + Decimal("0.01"))
        checked += 1
    if "exclusiveMinimum" in schema:
        bottom = Decimal(str(schema["exclusiveMinimum"]))
        assert not accepts(name, field, bottom) and accepts(name, field, bottom + Decimal("0.01"))
        checked += 1
    if "multipleOf" in schema:
        step = Decimal(str(schema["multipleOf"]))
        assert accepts(name, field, step * 7) and not accepts(name, field, step / 10)
        checked += 1
    assert checked, f"{name}.{field} documents no limit: {schema}"


def conforms(value, schema: dict) -> bool:
    """A small JSON Schema check (types, required, properties, enum, $ref, anyOf) of what the API returns."""
    if "$ref" in schema:
        return conforms(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        return any(conforms(value, option) for option in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        return (isinstance(value, dict) and set(schema.get("required", [])) <= set(value)
                and set(value) <= set(schema.get("properties", {}))
                and all(conforms(value[key], sub) for key, sub in schema.get("properties", {}).items() if key in value))
    if kind == "array":
        return isinstance(value, list) and all(conforms(item, schema["items"]) for item in value)
    types = {"string": str, "integer": int, "number": (int, float), "null": type(None), "boolean": bool}
    return kind is None or isinstance(value, types[kind])


def served(app, value):
    with app.app_context():
        return json.loads(jsonify(value).data)  # as a client reads it: numbers are floats


def test_a_ticket_as_the_tickets_service_gives_it_is_the_documented_ticket(app):
    ticket = Ticket(id="c" * 32, title="Show", price=Decimal("12.50"), user_id="a" * 32, version=3, order_id=None)
    body = served(app, present_ticket(ticket.to_dict()))
    assert set(body) == set(ticket_routes.Ticket.model_fields)
    assert conforms(body, SCHEMAS["Ticket"]) and body["price"] == 12.5


def test_an_order_as_the_orders_service_gives_it_is_the_documented_order(app):
    replica = TicketReplica(id="c" * 32, title="Show", price=Decimal("12.50"), user_id="5" * 32, version=0)
    order = Order(id="d" * 32, user_id="a" * 32, user_email="a@example.com", ticket=replica, ticket_id=replica.id,
                  status="created", expires_at=datetime(2030, 1, 1), version=0, price=None)
    body = served(app, present_order(order.to_dict()))
    assert set(body) == set(order_routes.Order.model_fields)
    assert set(body["ticket"]) == set(order_routes.OrderTicket.model_fields)
    assert conforms(body, SCHEMAS["Order"])
    assert set(SCHEMAS["Order"]["properties"]["status"]["enum"]) == set(STATUSES)


def test_users_and_errors_are_documented_as_they_are_answered(app):
    from services.auth.models import User

    user = User(id="a" * 32, email="ann@example.com", password_hash="x").to_dict()
    assert set(user) == set(user_routes.User.model_fields) and conforms(user, SCHEMAS["User"])
    assert conforms({"currentUser": user}, SCHEMAS["CurrentUser"]) and conforms({"currentUser": None},
                                                                                   SCHEMAS["CurrentUser"])
    for error in (BadRequest("Title is required", field="title"), Conflict("Order is being paid")):
        assert conforms({"errors": error.errors()}, SCHEMAS["Errors"])
