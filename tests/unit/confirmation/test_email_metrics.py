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
