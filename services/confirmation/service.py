"""The confirmation service: emails the buyer of every completed order, once; resend for operators."""
from __future__ import annotations

from services.common import events
from services.common.errors import TicketingError
from services.common.handlers import EventHandler
from services.common.health import HealthMixin
from services.common.parked import ParkedMessagesMixin
from services.common.store import Store
from services.common.rpc import rpc
from services.common.settings import Settings, settings_of

from . import service_layer as confirmation
from .mailers import MailService
from .models import Base
from .settings import ConfirmationSettings


class MailRetries(EventHandler):
    """The common retrying handler. A mail provider that is down is an infrastructure failure like
    any other: the email is retried with back-off for ``HANDLER_RETRY_FOR_SECONDS`` (hours) before it
    is parked. ``MAIL_MAX_ATTEMPTS`` bounds the number of tries instead (e.g. to park sooner)."""

    def setup(self):
        super().setup()
        self.max_attempts = settings_of(self.container, ConfirmationSettings).mail_max_attempts


class ConfirmationService(HealthMixin, ParkedMessagesMixin):
    """Entrypoints only: each parses its arguments, calls one function of the service layer
    (:mod:`services.confirmation.service_layer`, which owns the transactions and the sends) and
    returns what it gives."""

    name = "confirmation"

    # The order id, not the event id, is what must be handled once (one email per order), and the
    # send must happen between two commits (see service_layer), so this handler is not ``@handles``.
    store = Store(Base)
    mail = MailService()
    settings = Settings(ConfirmationSettings)

    @MailRetries.decorator(events.SOURCE[events.ORDER_COMPLETED], events.ORDER_COMPLETED, consumer="on_order_completed")
    def on_order_completed(self, payload):
        confirmation.confirm_order(self.store, self.mail, events.parse(events.ORDER_COMPLETED, payload))

    @rpc(expected_exceptions=(TicketingError,))
    def resend(self, order_id):
        """Operators: send the confirmation of ``order_id`` again; returns its log entry."""
        return confirmation.resend(self.store, self.mail, order_id)

    @rpc(expected_exceptions=(TicketingError,))
    def get_email(self, order_id):
        """Operators: the log entry of an order's confirmation (state, attempts, sends, last error)."""
        return confirmation.describe(self.store, order_id)

    @rpc(expected_exceptions=(TicketingError,))
    def unsent(self, limit=100):
        """Operators: confirmations not sent yet (being retried, or parked), oldest first."""
        return confirmation.unsent(self.store, limit)
