"""One rule for every text field: no control, surrogate, separator or bidirectional characters."""
import pytest

from services.common.errors import BadRequest
from services.common.validation import (Email, Input, NonEmpty, Password, Title, check_text, forbidden_character,
                                        header_safe, validate)

BAD = ["\x00", "\r", "\n", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u2066", "\u200f",
       "\ud800"]


class Form(Input):
    title: Title
    email: Email
    password: Password
    token: NonEmpty("Token")


GOOD = {"title": "Show", "email": "ann@example.com", "password": "correct horse", "token": "tok_visa"}


@pytest.mark.parametrize("char", BAD, ids=[f"U+{ord(c):04X}" for c in BAD])
@pytest.mark.parametrize("field", list(GOOD))
def test_every_text_field_refuses_control_and_bidi_characters(field, char):
    value = GOOD[field][:3] + char + GOOD[field][3:]
    with pytest.raises(BadRequest) as info:
        validate(Form, {**GOOD, field: value})
    assert info.value.to_dict()["field"] == field


def test_ordinary_unicode_is_welcome():
    title = "Björk – 東京 🎟️ family (👨‍👩‍👧)"  # the emoji carries a zero-width joiner
    assert validate(Form, {**GOOD, "title": title}).title == title
    assert forbidden_character(title) is None
    assert check_text("plain", "Title") == "plain"


def test_header_safe_turns_line_breaks_into_spaces():
    assert header_safe("a\r\nBcc: x@evil.test\u2028b") == "a  Bcc: x@evil.test b"


@pytest.mark.parametrize("password,ok", [("x" * 7, False), ("x" * 8, True), ("x" * 64, True), ("x" * 65, False)])
def test_passwords_are_8_to_64_characters(password, ok):
    if ok:
        assert validate(Form, {**GOOD, "password": password}).password == password
    else:
        with pytest.raises(BadRequest) as info:
            validate(Form, {**GOOD, "password": password})
        assert info.value.to_dict() == {"field": "password",
                                        "message": "Password must be between 8 and 64 characters"}


def test_over_long_emails_are_refused():
    with pytest.raises(BadRequest):
        validate(Form, {**GOOD, "email": "a" * 250 + "@b.co"})
