"""Card processors behind one small interface, chosen by configuration.

``STRIPE_KEY`` set      -> :class:`StripeProcessor`, the official ``stripe`` library
                           (``STRIPE_API_BASE`` points it elsewhere, e.g. at the tests' fake Stripe)
``STRIPE_KEY`` unset    -> :class:`SandboxProcessor`, offline, honouring Stripe's test tokens

A processor charges ``amount_cents`` in ``currency`` from a card ``token`` with an
idempotency key, and returns the charge id. It raises :class:`CardDeclined`
(the processor's message is for the buyer) or :class:`ProcessorUnavailable`:
with ``maybe_charged`` (the default: a timeout, a refused connection after
retries, a 5xx) nobody knows whether money moved, so the attempt stays open
and is replayed with the same key; without it the processor refused the
request before executing it (bad API key, invalid request), so nothing was
charged. The choice and its options are payments' settings
(:class:`services.payments.settings.PaymentsSettings`).
"""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import Protocol

from nameko.extensions import DependencyProvider

from services.common.settings import settings_of

from .settings import PaymentsSettings

log = logging.getLogger(__name__)

#: Stripe's message for a generic decline; the sandbox and the fake Stripe use it too.
DECLINED = "Your card was declined."

#: Stripe test tokens (https://docs.stripe.com/testing) the sandbox understands.
SANDBOX_PAYING_TOKENS = frozenset({
    "tok_visa", "tok_visa_debit", "tok_mastercard", "tok_mastercard_debit", "tok_mastercard_prepaid",
    "tok_amex", "tok_discover", "tok_diners", "tok_jcb", "tok_unionpay",
})
SANDBOX_DECLINES = {
    "tok_chargeDeclined": DECLINED,
    "tok_chargeDeclinedFraudulent": DECLINED,
    "tok_chargeDeclinedInsufficientFunds": "Your card has insufficient funds.",
    "tok_chargeDeclinedExpiredCard": "Your card has expired.",
    "tok_chargeDeclinedIncorrectCvc": "Your card's security code is incorrect.",
    "tok_chargeDeclinedProcessingError": "An error occurred while processing your card. Try again in a little bit.",
}


class CardDeclined(Exception):
    def __init__(self, message: str = DECLINED):
        super().__init__(message)
        self.message = message


class ProcessorUnavailable(Exception):
    """The processor did not answer, failed, or rejected our request.

    ``maybe_charged`` True (default): nobody knows if money moved. False: the
    processor answered that it did not execute the request (nothing charged).
    """

    def __init__(self, message: str = "The payment processor is unavailable", *, maybe_charged: bool = True):
        super().__init__(message)
        self.maybe_charged = maybe_charged


class Processor(Protocol):
    name: str

    def charge(self, *, amount_cents: int, currency: str, token: str, idempotency_key: str,
               description: str = "", metadata: dict | None = None) -> str:
        """Charge the card; return the charge id."""

    def refund(self, *, charge_id: str, amount_cents: int, idempotency_key: str) -> str:
        """Give the money of a charge back; return the refund id. Raises ProcessorUnavailable."""


class SandboxProcessor:
    """Offline stand-in for Stripe: test tokens behave as on Stripe, nothing leaves the machine.

    Charge ids derive from the idempotency key, so a replayed attempt gets the
    same charge, even after a restart.
    """

    name = "sandbox"

    def __init__(self):
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self._lock = threading.Lock()

    def charge(self, *, amount_cents, currency, token, idempotency_key, description="", metadata=None) -> str:
        if token in SANDBOX_DECLINES:
            raise CardDeclined(SANDBOX_DECLINES[token])
        if token not in SANDBOX_PAYING_TOKENS:
            raise CardDeclined(f"No such token: '{token}'")
        charge_id = "ch_sandbox_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        with self._lock:
            self.charges.setdefault(idempotency_key, {"id": charge_id, "amount": amount_cents,
                                                      "currency": currency, "source": token})
        return charge_id

    def refund(self, *, charge_id, amount_cents, idempotency_key) -> str:
        with self._lock:
            self.refunds.setdefault(idempotency_key, {"charge": charge_id, "amount": amount_cents})
        return "re_sandbox_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


class StripeProcessor:
    """Charges through the official ``stripe`` library (Charges API, card tokens).

    The library does blocking HTTP through ``requests``; in a service process
    eventlet has patched the sockets, so a charge in flight yields to the other
    workers (checked by the concurrency tests). The library itself retries
    network errors and 5xx answers with the same idempotency key.
    """

    name = "stripe"

    def __init__(self, api_key: str, api_base: str | None = None, timeout: float = 30.0,
                 max_network_retries: int = 2):
        import stripe

        self._stripe = stripe
        base_addresses = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(
            api_key, base_addresses=base_addresses, max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def charge(self, *, amount_cents, currency, token, idempotency_key, description="", metadata=None) -> str:
        stripe = self._stripe
        params = {"amount": amount_cents, "currency": currency, "source": token}
        if description:
            params["description"] = description
        if metadata:
            params["metadata"] = metadata
        try:
            charge = self.client.v1.charges.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            raise CardDeclined(exc.user_message or DECLINED) from None
        except stripe.InvalidRequestError as exc:
            if exc.param in ("source", "card") or exc.code in ("resource_missing", "token_already_used"):
                # an unknown or spent token is, to the buyer, a declined card
                raise CardDeclined(exc.user_message or DECLINED) from None
            # Stripe validates before it executes (and saves no idempotent result then); the same
            # parameters were just as invalid on any earlier try of this key: nothing was charged.
            raise ProcessorUnavailable(f"Stripe rejected the request: {exc.user_message}",
                                       maybe_charged=False) from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            # our key is wrong or lacks the right: Stripe executed nothing
            raise ProcessorUnavailable(f"Stripe refused our key: {type(exc).__name__}: {exc.user_message}",
                                       maybe_charged=False) from exc
        except stripe.StripeError as exc:
            # timeouts, connection errors, 5xx, 429, idempotency conflicts: the outcome is unknown
            raise ProcessorUnavailable(f"Stripe failed: {type(exc).__name__}: {exc.user_message}") from exc
        if getattr(charge, "status", "succeeded") == "failed":
            raise CardDeclined(getattr(charge, "failure_message", None) or DECLINED)
        return charge.id

    def refund(self, *, charge_id, amount_cents, idempotency_key) -> str:
        """A refund (the Refunds API, ``stripe.Refund.create``) with its own idempotency key."""
        stripe = self._stripe
        try:
            refund = self.client.v1.refunds.create(params={"charge": charge_id, "amount": amount_cents},
                                                   options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise ProcessorUnavailable(f"Stripe refund failed: {type(exc).__name__}: {exc.user_message}") from exc
        return refund.id


def processor_for(settings: PaymentsSettings) -> Processor:
    """Stripe with ``STRIPE_KEY``, else the offline sandbox."""
    if settings.stripe_key:
        base = settings.stripe_api_base
        log.info("payments: charging through Stripe%s", f" at {base}" if base else "")
        return StripeProcessor(settings.stripe_key, base, timeout=settings.stripe_timeout)
    log.info("payments: STRIPE_KEY is not set; using the offline sandbox processor (Stripe test tokens)")
    return SandboxProcessor()


class PaymentProcessor(DependencyProvider):
    """Gives workers the processor the configuration asks for."""

    def setup(self):

        self.processor = processor_for(settings_of(self.container, PaymentsSettings))

    def get_dependency(self, worker_ctx):
        return self.processor
