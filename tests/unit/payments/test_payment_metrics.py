"""Payment outcomes as counted in ticketing_payments_total."""
import pytest

from services.common.errors import Conflict, NotFound, PaymentDeclined, ServiceUnavailable
from services.payments import domain
from services.payments.service import payment_outcome


@pytest.mark.parametrize("exc, outcome", [
    (PaymentDeclined("Your card was declined."), "declined"),
    (Conflict("Order is cancelled"), "refused"),
    (NotFound("Order not found"), "refused"),
    (ServiceUnavailable(domain.UNCONFIRMED), "unknown"),
    (ServiceUnavailable(domain.NOTHING_CHARGED), "failed"),
    (RuntimeError("database away"), "failed"),
])
def test_each_failure_has_its_outcome(exc, outcome):
    assert payment_outcome(exc) == outcome
