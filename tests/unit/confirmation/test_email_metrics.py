"""Emails sent and failed are counted (ticketing_emails_total)."""
import pytest

from services.common import metrics
from services.confirmation.mailers import MailNotSent
from tests.unit.confirmation.test_confirmation_rules import (  # noqa: F401 - fixtures
    ORDER, completed, mailer, service, store)


def count(outcome):
    return metrics.REGISTRY.get_sample_value("ticketing_emails_total", {"outcome": outcome}) or 0.0


def test_sent_and_failed_emails_are_counted(service, mailer):
    sent, failed = count("sent"), count("failed")
    mailer.failures = 1
    with pytest.raises(MailNotSent):
        service.on_order_completed(completed())
    service.on_order_completed(completed())
    assert (count("sent"), count("failed")) == (sent + 1, failed + 1)


def test_an_email_is_retried_like_any_event_unless_its_tries_are_bounded(monkeypatch):
    """A mail provider that is down is an outage: retried for HANDLER_RETRY_FOR_SECONDS, not parked after N tries."""
    from types import SimpleNamespace

    from services.common.handlers import EventHandler
    from services.confirmation.service import MailRetries

    monkeypatch.setattr(EventHandler, "setup", lambda self: None)
    monkeypatch.delenv("MAIL_MAX_ATTEMPTS", raising=False)
    handler = MailRetries("orders", "order:completed", consumer="on_order_completed")
    handler.container = SimpleNamespace(config={})
    handler.setup()
    assert handler.max_attempts is None
    handler.container = SimpleNamespace(config={"MAIL_MAX_ATTEMPTS": "3"})
    handler.setup()
    assert handler.max_attempts == 3
