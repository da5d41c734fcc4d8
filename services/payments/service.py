"""The payments service: the charge RPC for the gateway, a look-up for operators."""
from __future__ import annotations

from nameko.rpc import RpcProxy, rpc

from services.common.errors import NotFound, TicketingError
from services.common.health import HealthMixin
from services.common.store import Store

from . import domain
from .models import Base, OutboxMessage, ProcessedEvent
from .processors import PaymentProcessor


#: the buyer's mistakes and the order's state: logged as expected, not as errors with a traceback
EXPECTED = (TicketingError,)


class PaymentsService(HealthMixin):
    name = "payments"

    store = Store(Base, OutboxMessage, ProcessedEvent)
    orders = RpcProxy("orders")
    processor = PaymentProcessor()

    @rpc(expected_exceptions=EXPECTED)
    def charge(self, user_id, order_id, token):
        """Pay ``order_id`` (owned by ``user_id``) with card ``token``; returns ``{"id": payment id}``."""
        return domain.pay_for_order(self.store, self.orders, self.processor, user_id, order_id, token)

    @rpc(expected_exceptions=EXPECTED)
    def get_payment(self, order_id):
        """Operators: the payment of an order (charge id, amount in cents, processor)."""
        with self.store.read() as session:
            payment = domain.find_payment(session, order_id)
            if payment is None:
                raise NotFound("No payment for this order")
            return payment.to_dict()
