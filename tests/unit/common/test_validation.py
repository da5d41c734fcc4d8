from decimal import Decimal

import pytest

from services.common.errors import BadRequest
from services.common.validation import Email, Input, JsonMoney, Money, Password, Title, is_valid_id, validate


class Ticket(Input):
    title: Title
    price: JsonMoney


class Domain(Input):
    price: Money


class Signup(Input):
    email: Email
    password: Password


def error_of(model, data):
    with pytest.raises(BadRequest) as info:
        validate(model, data)
    return info.value.to_dict()


@pytest.mark.parametrize("price,expected", [
    (Decimal("0.01"), Decimal("0.01")), (1, Decimal("1.00")), (Decimal("1000000"), Decimal("1000000.00")),
    (Decimal("12.5"), Decimal("12.50")),
])
def test_valid_prices_are_exact_decimals(price, expected):
    assert validate(Ticket, {"title": "x", "price": price}).price == expected


@pytest.mark.parametrize("price,message", [
    (0, "Price must be greater than 0"), (Decimal("-1"), "Price must be greater than 0"),
    (Decimal("1000000.01"), "Price must be at most 1,000,000"),
    (Decimal("1.001"), "Price must have at most 2 decimals"),
    ("10", "Price must be a number"), (True, "Price must be a number"), (None, "Price must be a number"),
    ([1], "Price must be a number"),
])
def test_invalid_prices_name_the_field(price, message):
    assert error_of(Ticket, {"title": "x", "price": price}) == {"message": message, "field": "price"}


def test_services_accept_decimal_strings_but_the_edge_wants_numbers():
    assert validate(Domain, {"price": "10.10"}).price == Decimal("10.10")
    assert error_of(Ticket, {"title": "x", "price": "10.10"})["field"] == "price"


def test_title_is_trimmed_and_bounded():
    assert validate(Ticket, {"title": "  Show  ", "price": 1}).title == "Show"
    assert error_of(Ticket, {"title": "   ", "price": 1}) == {"message": "Title is required", "field": "title"}
    assert error_of(Ticket, {"title": "x" * 201, "price": 1})["field"] == "title"
    assert validate(Ticket, {"title": "x" * 200, "price": 1}).title == "x" * 200
    assert error_of(Ticket, {"title": 5, "price": 1})["message"] == "Title must be a string"


def test_missing_fields_and_non_objects():
    assert error_of(Ticket, {"price": 1}) == {"message": "Title is required", "field": "title"}
    assert error_of(Ticket, ["not", "an", "object"]) == {"message": "Request body must be a JSON object"}


def test_email_lower_cased_and_password_trimmed():
    data = validate(Signup, {"email": "  Ann@Example.COM ", "password": "  abcdefgh  "})
    assert data.email == "ann@example.com" and data.password == "abcdefgh"
    for bad in ["nope", "a@b", "a b@c.d", "@c.de", ""]:
        assert error_of(Signup, {"email": bad, "password": "abcdefgh"})["field"] == "email"
    assert error_of(Signup, {"email": "a@b.cd", "password": " abcdefg "})["field"] == "password"
    assert error_of(Signup, {"email": "a@b.cd", "password": "x" * 65})["field"] == "password"


def test_ids_are_opaque_hex():
    assert is_valid_id("a" * 32)
    assert not is_valid_id("A" * 32) and not is_valid_id("123") and not is_valid_id(None)


def test_every_bad_field_is_reported():
    with pytest.raises(BadRequest) as info:
        validate(Signup, {"email": "nope", "password": "x"})
    assert [e["field"] for e in info.value.errors()] == ["email", "password"]
