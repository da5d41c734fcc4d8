"""Field rules shared by the gateway (request bodies) and the services (domain invariants).

Prices are exact: JSON numbers are parsed as ``Decimal`` (never float), must be
> 0, at most 1,000,000 and have at most 2 decimals. Strings are trimmed, and
every text field (titles, emails, passwords, tokens...) goes through
:func:`check_text`: control characters (NUL, CR, LF, tab, DEL, C1), lone
surrogates, line/paragraph separators and bidirectional overrides are refused,
so nothing a user typed can break a database, a log line or an email header,
or make a title read differently from what it is.

Each limit is stated once, here: the field types carry it both as a rule and as
JSON Schema, and the request bodies below are the one model of each input that
the gateway validates, the services validate again and the OpenAPI document
(gateway/openapi.py) is generated from.
"""
from __future__ import annotations

import unicodedata
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from .errors import BadRequest, Forbidden

MAX_PRICE = Decimal("1000000")
#: a price in the API's JSON Schema: what :func:`_money` accepts
PRICE_SCHEMA = {"type": "number", "exclusiveMinimum": 0, "maximum": int(MAX_PRICE), "multipleOf": 0.01}
MAX_TITLE_LENGTH = 200
#: 8-64 characters on sign-up (long passphrases welcome, bounded so hashing stays cheap)
MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH = 8, 64
#: what an id looks like (:func:`new_id`)
ID_PATTERN = "^[0-9a-f]{32}$"


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str, float)):
        raise PydanticCustomError("price", "Price must be a number")
    try:
        price = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise PydanticCustomError("price", "Price must be a number") from None
    if not price.is_finite():
        raise PydanticCustomError("price", "Price must be a number")
    if price <= 0:
        raise PydanticCustomError("price", "Price must be greater than 0")
    if price > MAX_PRICE:
        raise PydanticCustomError("price", "Price must be at most 1,000,000")
    if price != price.quantize(Decimal("0.01")):
        raise PydanticCustomError("price", "Price must have at most 2 decimals")
    return price.quantize(Decimal("0.01"))


def _json_number(value: Any) -> Any:
    """At the HTTP edge a price must be a JSON number, not a string."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
        raise PydanticCustomError("price", "Price must be a number")
    return value


#: bidirectional formatting characters (embeddings, overrides, isolates, marks): they let a
#: title display as something other than what it is ("Trojan Source")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Unicode categories never allowed in text: controls (Cc), surrogates (Cs), line and paragraph
#: separators (Zl, Zp)
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def forbidden_character(value: str) -> str | None:
    """The first character of ``value`` that no text field accepts, or None."""
    for char in value:
        if char in BIDI_CONTROLS or unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return char
    return None


def check_text(value: Any, name: str) -> str:
    """The one rule every text field follows: a string without control or bidi characters.

    Raises :class:`PydanticCustomError` (inside a model) — use :func:`validate` at the edges."""
    if not isinstance(value, str):
        raise PydanticCustomError("text", f"{name} must be a string")
    if forbidden_character(value) is not None:
        raise PydanticCustomError("text", f"{name} must not contain control or bidirectional characters")
    return value


def header_safe(value: str) -> str:
    """``value`` fit for one line of an email header: every forbidden character becomes a space.

    Validation keeps them out of new data; this guards what was stored before it did."""
    return "".join(" " if forbidden_character(c) else c for c in value)


def _text(name: str, low: int, high: int):
    def check(value: Any) -> str:
        value = check_text(value, name).strip()
        if len(value) < low:
            raise PydanticCustomError("text", f"{name} is required" if low == 1 else
                                      f"{name} must be between {low} and {high} characters")
        if len(value) > high:
            raise PydanticCustomError("text", f"{name} must be at most {high} characters" if low == 1 else
                                      f"{name} must be between {low} and {high} characters")
        return value

    return check


#: RFC 5321's limit on a path; longer "emails" are refused before any hashing or database work
MAX_EMAIL_LENGTH = 254
EMAIL_SCHEMA = {"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}


def _email(value: Any) -> str:
    if not isinstance(value, str) or forbidden_character(value) is not None:
        raise PydanticCustomError("email", "Email must be valid")
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if (not local or "." not in domain or domain.startswith(".") or domain.endswith(".")
            or len(value) > MAX_EMAIL_LENGTH or any(c.isspace() for c in value) or "@" in domain):
        raise PydanticCustomError("email", "Email must be valid")
    return value


def _opaque_id(name: str):
    def check(value: Any) -> str:
        if not isinstance(value, str) or not is_valid_id(value):
            raise PydanticCustomError("id", f"{name} must be a valid id")
        return value

    return check


def Text(name: str, low: int, high: int):  # noqa: N802 - reads like a type
    """A trimmed text field of ``low`` to ``high`` characters (:func:`check_text`'s rule)."""
    return Annotated[str, BeforeValidator(_text(name, low, high)),
                     WithJsonSchema({"type": "string", "minLength": low, "maxLength": high})]


Money = Annotated[Decimal, BeforeValidator(_money), WithJsonSchema(PRICE_SCHEMA)]
JsonMoney = Annotated[Decimal, BeforeValidator(_money), BeforeValidator(_json_number), WithJsonSchema(PRICE_SCHEMA)]
Title = Text("Title", 1, MAX_TITLE_LENGTH)
Email = Annotated[str, BeforeValidator(_email), WithJsonSchema(EMAIL_SCHEMA)]
Password = Text("Password", MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH)


def IdOf(name: str):  # noqa: N802 - reads like a type
    return Annotated[str, BeforeValidator(_opaque_id(name)), WithJsonSchema({"type": "string", "pattern": ID_PATTERN})]


def NonEmpty(name: str, high: int = 500):  # noqa: N802
    return Text(name, 1, high)


def new_id() -> str:
    """A fresh id: 32 lower-case hex characters (a random UUID's), what :func:`is_valid_id` accepts.
    Every entity's and every event's id is made here."""
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    """Ids are 32 lower-case hex characters (:func:`new_id`)."""
    return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def acting_user(user_id) -> str:
    """The user a user-facing RPC acts for. It is always someone: a missing id is a bug in the
    caller, never a way to act as an operator (operators have RPCs of their own)."""
    if not is_valid_id(user_id):
        raise Forbidden("An acting user is required")
    return user_id


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- the request bodies: validated by the gateway, again by the service, and the OpenAPI document's --

class Credentials(Input):
    """An email and a password to sign up with (the auth service checks them again)."""
    email: Email
    password: Password


class SigninCredentials(Input):
    """Sign-in: bounded like sign-up's fields, so a huge value is refused before hashing or the
    database; not held to sign-up's other rules, which older accounts may predate."""
    email: NonEmpty("Email", MAX_EMAIL_LENGTH)
    password: NonEmpty("Password", MAX_PASSWORD_LENGTH)


class TicketInput(Input):
    """A ticket put on sale or edited, as the tickets service takes it (a price may be a decimal string)."""
    title: Title
    price: Money


class TicketBody(TicketInput):
    """A ticket put on sale or edited over HTTP, where the price must be a JSON number."""
    price: JsonMoney


class OrderInput(Input):
    """A reservation."""
    ticketId: IdOf("ticketId")  # noqa: N815 - the JSON name


class PaymentInput(Input):
    """A card payment of an order."""
    token: NonEmpty("Token")
    orderId: IdOf("Order id")  # noqa: N815 - the JSON name


def validate(model: type[Input], data: Any) -> Input:
    """Validate ``data`` or raise BadRequest naming the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found: dict = {}  # the first error of each field, in the model's field order
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else None
            message = error["msg"]
            if error["type"] == "missing":
                message = f"{field[0].upper() + field[1:]} is required" if field else "A field is required"
            found.setdefault(field, {"message": message, **({"field": field} if field else {})})
        first, *more = found.values()
        raise BadRequest(first["message"], field=first.get("field"), more=more) from None
