"""The payments service: the charge RPC for the gateway, reconciliation of unconfirmed charges, the hold
sweep (dead payers, holds to release, refunds of cancelled orders), look-ups and refunds for operators."""
from __future__ import annotations

import logging

from nameko.dependency_providers import Config
from nameko.timer import Timer
from sqlalchemy import select

from services.common import events, metrics
from services.common.errors import NotFound, PaymentDeclined, ServiceUnavailable, TicketingError
from services.common.batches import handles_batch
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.rpc import ServiceRpc, rpc
from services.common.store import Store

from . import domain
from .models import Base, ChargeAttempt, OutboxMessage, ProcessedEvent
from .processors import PaymentProcessor, setting

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


class ConfiguredTimer(Timer):
    """A nameko timer whose interval is a setting (nameko config first, then the environment)."""

    def __init__(self, setting_name: str, default: float, **kwargs):
        super().__init__(interval=float(default), **kwargs)
        self.setting_name, self.default = setting_name, default

    def setup(self):
        self.interval = float(setting(self.container.config, self.setting_name, self.default))
        super().setup()


configured_timer = ConfiguredTimer.decorator


class PaymentsService(HealthMixin, ParkedMessagesMixin):
    name = "payments"

    store = Store(Base, OutboxMessage, ProcessedEvent)
    orders = ServiceRpc("orders")
    processor = PaymentProcessor()
    config = Config()

    @rpc(expected_exceptions=EXPECTED)
    def charge(self, user_id, order_id, token, request_id=None):
        """Pay ``order_id`` (owned by ``user_id``) with card ``token``; returns ``{"id": payment id}``.
        The same ``request_id`` again gets the first outcome (the same payment, the same decline)."""
        try:
            result = domain.pay_for_order(self.store, self.orders, self.processor, user_id, order_id, token,
                                          request_id)
        except BaseException as exc:
            metrics.PAYMENTS.labels(payment_outcome(exc)).inc()
            raise
        metrics.PAYMENTS.labels("paid").inc()
        log.info("order %s paid (payment %s)", order_id, result.get("id"), extra={"payment_id": result.get("id")})
        return result

    @configured_timer("PAYMENTS_RECONCILE_INTERVAL", domain.RECONCILE_INTERVAL)
    def reconcile_pending(self):
        """Replay charge attempts whose outcome is unknown (PAYMENTS_RECONCILE_MIN_AGE, ..._GIVE_UP_AGE seconds)."""
        counts = domain.reconcile(
            self.store, self.orders, self.processor,
            min_age=float(setting(self.config, "PAYMENTS_RECONCILE_MIN_AGE", domain.RECONCILE_MIN_AGE)),
            give_up_age=float(setting(self.config, "PAYMENTS_RECONCILE_GIVE_UP_AGE", domain.RECONCILE_GIVE_UP_AGE)),
        )
        if any(counts.values()):
            log.info("reconciliation round: %s", counts)
        return counts

    @configured_timer("PAYMENTS_HOLD_SWEEP_INTERVAL", domain.HOLD_SWEEP_INTERVAL)
    def settle_holds(self):
        """Drop attempts whose payer died before charging (PAYMENTS_HOLD_GRACE seconds), release the
        holds of attempts that moved no money, refund payments of cancelled orders."""
        counts = domain.settle_holds(self.store, self.orders, self.processor,
                                     grace=float(setting(self.config, "PAYMENTS_HOLD_GRACE", domain.HOLD_GRACE)))
        if any(counts.values()):
            log.info("hold sweep: %s", counts)
        return counts

    # Idempotent by itself (the cancellation is recorded once), so no event-id record.
    @handles_batch(events.ORDER_CANCELLED)
    def on_order_cancelled(self, tx, event):
        domain.note_cancelled(tx, event.id)

    @rpc(expected_exceptions=EXPECTED)
    def refund(self, order_id):
        """Operators: give back the payment of ``order_id`` (once); returns the refund record."""
        return domain.refund_payment(self.store, self.processor, order_id, reason="an operator asked for it")

    @rpc(expected_exceptions=EXPECTED)
    def get_payment(self, order_id):
        """Operators: the payment of an order (charge id, amount in cents, processor)."""
        with self.store.read() as session:
            payment = domain.find_payment(session, order_id)
            if payment is None:
                raise NotFound("No payment for this order")
            return payment.to_dict()

    @rpc
    def has_unsettled_charge(self, order_id):
        """For orders' sweep of stale holds: may money have moved for this order (an attempt holding,
        pending, abandoned, or paid and not yet applied by orders)? Then the hold must stay."""
        with self.store.read() as session:
            return domain.has_unsettled_charge(session, order_id)

    @rpc(expected_exceptions=EXPECTED)
    def unsettled_attempts(self):
        """Operators: charge attempts whose outcome is not known (pending, or abandoned by reconciliation)."""
        with self.store.read() as session:
            query = (select(ChargeAttempt)
                     .where(ChargeAttempt.state.in_((ChargeAttempt.PENDING, ChargeAttempt.ABANDONED)))
                     .order_by(ChargeAttempt.created_at).limit(500))
            return [attempt.to_dict() for attempt in session.scalars(query)]
