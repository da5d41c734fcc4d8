"""Inputs that once gave a 500 (or worse) answer 4xx with the error shape, before any RPC."""
import base64
import email
import email.policy
import json
from decimal import Decimal

import pytest

from services.auth import domain as auth_domain, models as auth_models
from services.common import events
from services.common.errors import BadRequest, Conflict
from services.confirmation import domain as confirmation_domain
from services.confirmation.mailers import MailSettings, OutboxDirMailer
from services.tickets import service_layer as tickets_service_layer
from tests.unit.gateway.conftest import errors_of

ALICE, BOB = "a" * 32, "b" * 32


@pytest.mark.parametrize("title", ["Show\x00", "Show\r\nBcc: x@evil.test", "\u202eevil", "tab\there"])
def test_control_and_bidi_characters_in_a_title_are_a_400(client, signed_in, rpc, title):
    signed_in()
    response = client.post("/api/tickets", json={"title": title, "price": 10})
    assert response.status_code == 400
    assert errors_of(response)[0]["field"] == "title"
    assert rpc.calls == []


@pytest.mark.parametrize("depth", [25, 100_000])
def test_deeply_nested_json_is_a_400(client, signed_in, rpc, depth):
    signed_in()
    body = '{"title": ' + "[" * depth + "]" * depth + ', "price": 1}'
    response = client.post("/api/tickets", data=body, content_type="application/json")
    assert response.status_code == 400
    assert errors_of(response) == [{"message": "Request body is nested too deeply"}]
    assert rpc.calls == []


@pytest.mark.parametrize("limit", ["²", "١", "0", "101", "-1", "1e2", " 5"])
def test_a_limit_that_is_not_plain_ascii_digits_in_range_is_a_400(client, rpc, limit):
    response = client.get("/api/tickets", query_string={"limit": limit})
    assert response.status_code == 400 and errors_of(response)[0]["field"] == "limit"
    assert rpc.calls == []


@pytest.mark.parametrize("route", ["/api/users/signin", "/api/users/signup"])
def test_an_over_long_email_is_a_400_before_any_rpc(client, rpc, route):
    response = client.post(route, json={"email": "a" * 300 + "@example.com", "password": "long-enough"})
    assert response.status_code == 400 and errors_of(response)[0]["field"] == "email"
    assert rpc.calls == []


def test_idempotency_keys_are_scoped_to_the_user(client, signed_in, rpc):
    rpc.tickets.create_user_ticket = lambda user, title, price, request_id: {
        "id": "c" * 32, "title": title, "price": price, "userId": user, "version": 0, "orderId": None}
    headers = {"Idempotency-Key": "same-key"}
    for user in (ALICE, BOB, ALICE):
        signed_in(user)
        assert client.post("/api/tickets", json={"title": "Show", "price": 1}, headers=headers).status_code == 201
    alice_1, bob, alice_2 = [args[3] for _name, args in rpc.calls]
    assert alice_1 == alice_2 and alice_1 != bob and len(bob) == 64


def test_the_tickets_service_refuses_another_users_request_id_with_a_409(make_store):
    tx = make_store("tickets").begin()
    tickets_service_layer.list_ticket(tx, ALICE, "Show", 10, request_id="k" * 64)
    assert tickets_service_layer.list_ticket(tx, ALICE, "Show", 10, request_id="k" * 64).user_id == ALICE
    with pytest.raises(Conflict):
        tickets_service_layer.list_ticket(tx, BOB, "Show", 10, request_id="k" * 64)


@pytest.mark.parametrize("cursor_payload", [["2026-01-01T00:00:00+00:00", "a\x00b"], ["x", "y"], "[" * 5000])
def test_a_forged_cursor_is_a_400(make_store, cursor_payload):
    raw = cursor_payload.encode() if isinstance(cursor_payload, str) else json.dumps(cursor_payload).encode()
    cursor = base64.urlsafe_b64encode(raw).decode()
    with pytest.raises(BadRequest):
        tickets_service_layer.page_on_sale(make_store("tickets").session(), 10, cursor)


def test_the_auth_service_refuses_an_over_long_email_before_the_database(make_store):
    session = make_store("auth").session()
    with pytest.raises(BadRequest, match="Invalid credentials"):
        auth_domain.signin_email("a" * 300 + "@example.com", "long-enough")
    assert session.query(auth_models.ThrottleCounter).count() == 0


def test_a_stored_title_with_cr_lf_cannot_break_the_email_subject(tmp_path):
    """A title stored before validation refused CR/LF: the .eml mailer used to raise on it (parked forever)."""
    event = events.parse(events.ORDER_COMPLETED, events.new_event(
        events.ORDER_COMPLETED, id="0" * 32, version=2, userId=BOB, userEmail="bob@example.com",
        ticket={"id": "7" * 32, "title": "Show\r\nBcc: victim@example.com", "price": Decimal("5")}))
    message = confirmation_domain.compose(event, MailSettings(OutboxDirMailer(tmp_path), "t@x.test", "http://x"))
    assert "\r" not in message.subject and "\n" not in message.subject
    OutboxDirMailer(tmp_path).send(message)
    parsed = email.message_from_bytes((tmp_path / ("0" * 32 + ".eml")).read_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and "Bcc: victim" in parsed["Subject"]
