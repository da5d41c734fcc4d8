"""The OpenAPI 3 description of the gateway (served at /api/openapi.json).

One table of operations; each blueprint's routes appear here. A test checks
that every route the app serves is described and vice versa.

The schemas are generated from the models the code itself uses: the request
bodies of services/common/validation.py (so a limit such as a title's 200
characters is stated once, in its field type) and the response shapes next to
each blueprint's routes; tests check those against what the services return.
"""
from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from services.common.validation import Credentials, OrderInput, PaymentInput, SigninCredentials, TicketBody

from .api import health, orders, payments, tickets, users

ERROR = {"$ref": "#/components/schemas/Errors"}
REF = "#/components/schemas/{model}"


class Error(BaseModel):
    """One error: what went wrong and, for a bad input, which field."""
    message: str
    field: str | None = None


class Errors(BaseModel):
    """Every error answer's body."""
    errors: list[Error]


#: the document's name of each schema -> (the model, whether it is read from requests or written to responses)
MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "Credentials": (Credentials, "validation"),
    "SigninCredentials": (SigninCredentials, "validation"),
    "TicketInput": (TicketBody, "validation"),
    "OrderInput": (OrderInput, "validation"),
    "PaymentInput": (PaymentInput, "validation"),
    "Error": (Error, "serialization"),
    "Errors": (Errors, "serialization"),
    "User": (users.User, "serialization"),
    "CurrentUser": (users.CurrentUser, "serialization"),
    "Ticket": (tickets.Ticket, "serialization"),
    "Order": (orders.Order, "serialization"),
    "Payment": (payments.Payment, "serialization"),
    "Status": (health.Status, "serialization"),
}


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema without the titles it makes up from the names."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def generate(self, schema, mode="validation"):
        document = super().generate(schema, mode)
        for each in [document, *document.get("$defs", {}).values()]:
            each.pop("title", None)
        return document


def schemas() -> dict:
    """components.schemas: every model's JSON Schema, the models they nest included."""
    found: dict = {"Empty": {"type": "object"}}
    for name, (model, mode) in MODELS.items():
        schema = model.model_json_schema(ref_template=REF, schema_generator=_Schema, mode=mode)
        for nested, nested_schema in {**schema.pop("$defs", {}), name: schema}.items():
            if found.setdefault(nested, nested_schema) != nested_schema:
                raise ValueError(f"two schemas are called {nested}")
    return found


SCHEMAS = schemas()

# (method, path, summary, request schema, {status: (description, schema)}, needs sign-in)
OPERATIONS = [
    ("post", "/api/users/signup", "Sign up", "Credentials",
     {201: ("Signed up and signed in (auth cookies set)", "User"), 400: ("Invalid input or email in use", ERROR),
      429: ("Too many sign-ups from this address", ERROR)},
     False),
    ("post", "/api/users/signin", "Sign in", "SigninCredentials",
     {200: ("Signed in (auth cookies set)", "User"), 400: ("Invalid credentials", ERROR),
      403: ("Account disabled", ERROR), 429: ("Too many failed attempts", ERROR)}, False),
    ("post", "/api/users/signout", "Sign out (clears cookies, revokes the refresh token)", "Empty",
     {200: ("Signed out", None)}, False),
    ("get", "/api/users/currentuser", "The signed-in user, or null", None,
     {200: ("Current user", "CurrentUser")}, False),
    ("get", "/api/users/currentUser", "Alias of /api/users/currentuser", None,
     {200: ("Current user", "CurrentUser")}, False),
    ("post", "/api/users/refresh", "Rotate the refresh token and issue a new access token", "Empty",
     {200: ("New cookies set", "User"), 401: ("No valid refresh token", ERROR)}, False),
    ("get", "/api/tickets", "Tickets on sale, newest first (Link header has the next page)", None,
     {200: ("A page of tickets", {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}}),
      400: ("Bad limit or cursor", ERROR)}, False),
    ("post", "/api/tickets", "List a ticket for sale", "TicketInput",
     {201: ("Created", "Ticket"), 400: ("Invalid input", ERROR), 401: ("Not signed in", ERROR)}, True),
    ("get", "/api/tickets/{id}", "A ticket (on sale, reserved or sold)", None,
     {200: ("The ticket", "Ticket"), 404: ("No such ticket", ERROR)}, False),
    ("put", "/api/tickets/{id}", "Edit your ticket", "TicketInput",
     {200: ("Updated", "Ticket"), 400: ("Invalid input", ERROR), 401: ("Not signed in", ERROR),
      403: ("Not the owner", ERROR), 404: ("No such ticket", ERROR), 409: ("Reserved ticket", ERROR)}, True),
    ("get", "/api/orders", "Your orders, oldest first", None,
     {200: ("Orders", {"type": "array", "items": {"$ref": "#/components/schemas/Order"}}),
      401: ("Not signed in", ERROR)}, True),
    ("post", "/api/orders", "Reserve a ticket", "OrderInput",
     {201: ("Created", "Order"), 400: ("Invalid input", ERROR), 401: ("Not signed in", ERROR),
      404: ("No such ticket", ERROR), 409: ("Ticket already reserved, or your own", ERROR)}, True),
    ("get", "/api/orders/{id}", "One of your orders", None,
     {200: ("The order", "Order"), 401: ("Not signed in", ERROR), 403: ("Someone else's", ERROR),
      404: ("No such order", ERROR)}, True),
    ("delete", "/api/orders/{id}", "Cancel your order", None,
     {204: ("Cancelled", None), 401: ("Not signed in", ERROR), 403: ("Someone else's", ERROR),
      404: ("No such order", ERROR), 409: ("Order is complete", ERROR)}, True),
    ("post", "/api/payments", "Pay for an order by card", "PaymentInput",
     {201: ("Paid", "Payment"), 400: ("Invalid input", ERROR), 401: ("Not signed in", ERROR),
      402: ("Card declined", ERROR), 403: ("Someone else's order", ERROR), 404: ("No such order", ERROR),
      409: ("Order cancelled, complete, expired or being paid", ERROR)}, True),
    ("get", "/api/healthz", "Liveness", None, {200: ("Alive", "Status")}, False),
    ("get", "/api/readyz", "Readiness (the broker answers)", None,
     {200: ("Ready", "Status"), 503: ("Not ready", "Status")}, False),
    ("get", "/api/openapi.json", "This document", None, {200: ("OpenAPI 3 document", None)}, False),
]

COMMON = {
    413: ("Body over 1 MiB", ERROR),
    503: ("A service did not answer in time", ERROR),
}
#: every state-changing route: cross-site forgery guards (gateway/guards.py)
STATE_CHANGING = {
    403: ("Cross-site request (Origin or Sec-Fetch-Site), or not allowed", ERROR),
    415: ("Body is not application/json", ERROR),
}


def _schema(ref):
    if ref is None:
        return None
    return {"$ref": f"#/components/schemas/{ref}"} if isinstance(ref, str) else ref


def document() -> dict:
    paths: dict = {}
    for method, path, summary, request, responses, signed_in in OPERATIONS:
        operation: dict = {"summary": summary, "responses": {}}
        if "{id}" in path:
            operation["parameters"] = [{"name": "id", "in": "path", "required": True,
                                        "schema": {"type": "string"}}]
        if path == "/api/tickets" and method == "get":
            operation["parameters"] = [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ]
        if request:
            operation["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": _schema(request)}}}
        if signed_in:
            operation["security"] = [{"cookieAuth": []}, {"bearerAuth": []}]
        extra = COMMON if method in ("post", "put") else {503: COMMON[503]}
        if method in ("post", "put", "delete"):
            extra = {**extra, **STATE_CHANGING}
        for status, (description, schema) in {**extra, **responses}.items():
            response: dict = {"description": description}
            if schema is not None:
                response["content"] = {"application/json": {"schema": _schema(schema)}}
            operation["responses"][str(status)] = response
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ticketing API", "version": "1.0.0",
                 "description": "Ticket-resale marketplace. Errors: {\"errors\": [{\"message\", \"field\"?}]}."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "ticketing_access"},
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
