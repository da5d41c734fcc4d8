"""POST /api/payments against a fake payments service: parsing, the call, error mapping, OpenAPI."""
import pytest

from gateway import openapi
from services.common.errors import Conflict, Forbidden, NotFound, PaymentDeclined, ServiceUnavailable

from .conftest import errors_of

ORDER = "d" * 32


def test_paying_needs_sign_in(client, rpc):
    response = client.post("/api/payments", json={"token": "tok_visa", "orderId": ORDER})
    assert response.status_code == 401 and rpc.calls == []


def test_paying_returns_201_with_the_payment_id(client, rpc, signed_in):
    user = signed_in()
    rpc.payments.charge = lambda user_id, order_id, token, request_id: {"id": "e" * 32}
    response = client.post("/api/payments", json={"token": " tok_visa ", "orderId": ORDER},
                           headers={"Idempotency-Key": "pay-once"})
    assert response.status_code == 201 and response.get_json() == {"id": "e" * 32}
    (name, (user_id, order_id, token, request_id)), = rpc.calls
    assert (name, user_id, order_id, token) == ("payments.charge", user["id"], ORDER, "tok_visa")
    # the client's key, scoped to the user: the same key again is the same request
    client.post("/api/payments", json={"token": "tok_visa", "orderId": ORDER}, headers={"Idempotency-Key": "pay-once"})
    assert rpc.calls[1][1][3] == request_id != "pay-once"


def test_without_an_idempotency_key_each_request_gets_its_own_id(client, rpc, signed_in):
    signed_in()
    rpc.payments.charge = lambda user_id, order_id, token, request_id: {"id": "e" * 32}
    for _ in range(2):
        client.post("/api/payments", json={"token": "tok_visa", "orderId": ORDER})
    (_, first), (_, second) = rpc.calls
    assert first[3] and second[3] and first[3] != second[3]


@pytest.mark.parametrize("body, field", [({"orderId": ORDER}, "token"), ({"token": "", "orderId": ORDER}, "token"),
                                         ({"token": "tok_visa"}, "orderId"),
                                         ({"token": "tok_visa", "orderId": "nope"}, "orderId"),
                                         ({"token": 5, "orderId": ORDER}, "token")])
def test_invalid_bodies_are_400_with_the_field(client, rpc, signed_in, body, field):
    signed_in()
    response = client.post("/api/payments", json=body)
    assert response.status_code == 400 and errors_of(response)[0]["field"] == field
    assert rpc.calls == []


@pytest.mark.parametrize("error, status", [(NotFound("Order not found"), 404), (Forbidden("This order is not yours"), 403),
                                           (Conflict("Order is cancelled"), 409), (Conflict("Order has expired"), 409),
                                           (PaymentDeclined("Your card was declined.", field="token"), 402),
                                           (ServiceUnavailable(), 503)])
def test_service_errors_map_to_their_status(client, rpc, signed_in, error, status):
    signed_in()

    def charge(user_id, order_id, token, request_id):
        raise error

    rpc.payments.charge = charge
    response = client.post("/api/payments", json={"token": "tok_chargeDeclined", "orderId": ORDER})
    assert response.status_code == status and errors_of(response)[0]["message"] == error.message


def test_openapi_describes_the_route():
    operation = openapi.document()["paths"]["/api/payments"]["post"]
    assert {"201", "400", "401", "402", "403", "404", "409"} <= set(map(str, operation["responses"]))
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PaymentInput"}
    assert set(openapi.document()["components"]["schemas"]["PaymentInput"]["required"]) == {"token", "orderId"}
