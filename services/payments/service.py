"""The payments service's entrypoints: the charge RPC for the gateway, reconciliation of unconfirmed charges,
the hold sweep (dead payers, holds to release, refunds of cancelled orders), look-ups and refunds for
operators. Each one parses what it is given, calls one step of the service layer
(:mod:`services.payments.service_layer`) and returns its answer; the rules are in :mod:`services.payments.domain`."""
from __future__ import annotations

import logging


from services.common import events, metrics
from services.common.batches import batch_event_handler, parse_all
from services.common.errors import PaymentDeclined, ServiceUnavailable, TicketingError
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import ServiceRpc, rpc
from services.common.settings import Settings, configured_timer
from services.common.store import Store

from . import domain, service_layer as payments
from .models import Base, OutboxMessage
from .processors import PaymentProcessor
from .settings import PaymentsSettings

log = logging.getLogger(__name__)

#: the buyer's mistakes and the order's state: logged as expected, not as errors with a traceback
EXPECTED = (TicketingError,)


def payment_outcome(exc: BaseException) -> str:
    """declined (the card), refused (the order's state or the input), unknown (the processor's
    answer was lost: reconciliation settles it) or failed (nothing charged, try again)."""
    if isinstance(exc, PaymentDeclined):
        return "declined"
    if isinstance(exc, ServiceUnavailable):
        return "unknown" if exc.message == domain.UNCONFIRMED else "failed"
    if isinstance(exc, TicketingError):
        return "refused"
    return "failed"


class PaymentsService(HealthMixin, ParkedMessagesMixin):
    name = "payments"

    store = Store(Base, OutboxMessage)
    orders = ServiceRpc("orders")
    processor = PaymentProcessor()
    settings = Settings(PaymentsSettings)

    @rpc(expected_exceptions=EXPECTED)
    def charge(self, user_id, order_id, token, request_id=None):
        """Pay ``order_id`` (owned by ``user_id``) with card ``token``; returns ``{"id": payment id}``.
        The same ``request_id`` again gets the first outcome (the same payment, the same decline)."""
        try:
            result = payments.pay_for_order(self.store, self.orders, self.processor, user_id, order_id, token,
                                         request_id)
        except BaseException as exc:
            metrics.PAYMENTS.labels(payment_outcome(exc)).inc()
            raise
        metrics.PAYMENTS.labels("paid").inc()
        log.info("order %s paid (payment %s)", order_id, result.get("id"), extra={"payment_id": result.get("id")})
        return result

    @configured_timer("payments_reconcile_interval")
    def reconcile_pending(self):
        """Replay charge attempts whose outcome is unknown (PAYMENTS_RECONCILE_MIN_AGE, ..._GIVE_UP_AGE seconds)."""
        counts = payments.reconcile(
            self.store, self.orders, self.processor,
            min_age=self.settings.payments_reconcile_min_age,
            give_up_age=self.settings.payments_reconcile_give_up_age,
        )
        if any(counts.values()):
            log.info("reconciliation round: %s", counts)
        return counts

    @configured_timer("payments_hold_sweep_interval")
    def settle_holds(self):
        """Drop attempts whose payer died before charging (PAYMENTS_HOLD_GRACE seconds), release the
        holds of attempts that moved no money, refund payments of cancelled orders."""
        counts = payments.settle_holds(self.store, self.orders, self.processor,
                                    grace=self.settings.payments_hold_grace)
        if any(counts.values()):
            log.info("hold sweep: %s", counts)
        return counts

    # Idempotent by itself (the cancellation is recorded once), so no event-id record.
    @batch_event_handler(events.SOURCE[events.ORDER_CANCELLED], events.ORDER_CANCELLED,
                         consumer="on_order_cancelled")
    def on_order_cancelled(self, batch):
        """A batch of cancellations, remembered in one statement."""
        payments.note_cancelled(self.store, [event.id for event in parse_all(events.ORDER_CANCELLED, batch)])

    @rpc(expected_exceptions=EXPECTED)
    def refund(self, order_id):
        """Operators: give back the payment of ``order_id`` (once); returns the refund record."""
        return payments.refund_payment(self.store, self.processor, order_id, reason="an operator asked for it")

    @rpc(expected_exceptions=EXPECTED)
    def get_payment(self, order_id):
        """Operators: the payment of an order (charge id, amount in cents, processor)."""
        return payments.payment_of(self.store, order_id)

    @rpc
    def has_unsettled_charge(self, order_id):
        """For orders' sweep of stale holds: may money have moved for this order (an attempt holding,
        pending, abandoned, or paid and not yet applied by orders)? Then the hold must stay."""
        return payments.has_unsettled_charge(self.store, order_id)

    @rpc(expected_exceptions=EXPECTED)
    def unsettled_attempts(self):
        """Operators: charge attempts whose outcome is not known (pending, or abandoned by reconciliation)."""
        return payments.unsettled_attempts(self.store)
