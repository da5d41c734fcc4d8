import pytest
from nameko.exceptions import deserialize, serialize

from services.common import errors


@pytest.mark.parametrize("error", [
    errors.BadRequest("Title is required", field="title"), errors.NotFound("Ticket not found"),
    errors.BadRequest("Email must be valid", field="email", more=[{"message": "Password is required",
                                                                    "field": "password"}]),
    errors.Conflict("Ticket is already reserved"), errors.PaymentDeclined("Your card was declined."),
    errors.Forbidden(), errors.NotAuthorized(), errors.TooManyRequests(), errors.ServiceUnavailable(),
])
def test_errors_cross_rpc_as_themselves(error):
    back = deserialize(serialize(error))
    assert type(back) is type(error) and back.errors() == error.errors() and back.status == error.status


def test_status_codes_are_the_specs():
    assert [e.status for e in (errors.BadRequest, errors.NotAuthorized, errors.PaymentDeclined, errors.Forbidden,
                               errors.NotFound, errors.Conflict, errors.TooManyRequests)] == [
        400, 401, 402, 403, 404, 409, 429]
