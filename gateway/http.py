"""Request parsing and response shaping shared by the blueprints."""
from __future__ import annotations

import hashlib
import json
import uuid
from decimal import Decimal

from flask import current_app, request
from flask.json.provider import DefaultJSONProvider

from services.common.errors import BadRequest, NotFound
from services.common.validation import Input, is_valid_id, validate


class DecimalJSONProvider(DefaultJSONProvider):
    """Money in, money out: JSON numbers parse to Decimal and Decimals render as JSON numbers."""

    @staticmethod
    def default(o):
        if isinstance(o, Decimal):
            # A validated price (<= 1e6, 2 decimals) prints as exactly its decimal digits.
            return float(o)
        return DefaultJSONProvider.default(o)

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_float", Decimal)
        return json.loads(s, **kwargs)


#: no request body of ours nests deeper than this; deeper ones are refused before validation
MAX_JSON_DEPTH = 20


def body(model: type[Input]):
    """The request's JSON body validated by ``model``; 400 with ``field`` otherwise."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data = {}
    else:
        try:
            data = current_app.json.loads(raw)
        except RecursionError:  # nesting deeper than the parser's own stack
            raise BadRequest("Request body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("Request body must be valid JSON") from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise BadRequest("Request body is nested too deeply")
    return validate(model, data)


def json_depth(value) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def path_id(value: str, what: str) -> str:
    """A malformed id in a path is simply not found."""
    if not is_valid_id(value):
        raise NotFound(f"{what} not found")
    return value


def money(value) -> Decimal:
    return Decimal(str(value))


def present_ticket(ticket: dict) -> dict:
    return {**ticket, "price": money(ticket["price"])}


def present_order(order: dict) -> dict:
    return {**order, "ticket": present_ticket(order["ticket"])}


def request_id(user_id: str) -> str:
    """Idempotency key of a create: the client's ``Idempotency-Key`` scoped to the acting user
    (a digest of both, so two users sending the same key never meet), else a fresh one, so that a
    redelivered RPC does not create twice."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{user_id}\n{key}".encode("utf-8", "surrogatepass")).hexdigest()
