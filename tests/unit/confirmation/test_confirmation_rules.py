"""Confirmation rules through the service class (``worker_factory``): what the email says, sent once per order."""
import email
import email.policy
from decimal import Decimal

import pytest
from nameko.testing.services import worker_factory

from services.common import events
from services.common.errors import Conflict, NotFound
from services.confirmation import domain, service_layer
from services.confirmation.mailers import MailNotSent, MailSettings, OutboxDirMailer, mailer_for
from services.confirmation.settings import ConfirmationSettings
from services.confirmation.service import ConfirmationService

ORDER = "0" * 31 + "1"


def completed(order_id=ORDER, title="Rock & Roll <Live>", price="1234.50"):
    return events.new_event(events.ORDER_COMPLETED, id=order_id, version=2, userId="b" * 32,
                            userEmail="bob@example.com",
                            ticket={"id": "7" * 32, "title": title, "price": Decimal(price)})


class RecordingMailer:
    name = "recording"

    def __init__(self):
        self.sent, self.failures = [], 0

    def send(self, message):
        if self.failures:
            self.failures -= 1
            raise MailNotSent("SendGrid answered 503")
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


@pytest.fixture
def store(make_store):
    return make_store("confirmation")


@pytest.fixture
def mailer():
    return RecordingMailer()


@pytest.fixture
def service(store, mailer):
    settings = MailSettings(mailer, "Ticketing <tickets@example.com>", "https://tickets.example.com")
    return worker_factory(ConfirmationService, store=store, mail=settings)


def test_the_email_names_the_ticket_price_order_and_links_to_it(service, mailer):
    service.on_order_completed(completed())
    sent, = mailer.sent
    assert sent.to == "bob@example.com" and "Rock & Roll <Live>" in sent.subject
    for part in ("Rock & Roll <Live>", "$1,234.50", ORDER, f"https://tickets.example.com/orders/{ORDER}"):
        assert part in sent.text
    assert "Rock &amp; Roll &lt;Live&gt;" in sent.html and "$1,234.50" in sent.html
    assert f'href="https://tickets.example.com/orders/{ORDER}"' in sent.html
    log = service.get_email(ORDER)
    assert (log["state"], log["sends"], log["attempts"], log["providerMessageId"]) == ("sent", 1, 1, "msg-1")


def test_a_redelivered_or_repeated_event_sends_nothing_more(service, mailer):
    event = completed()
    service.on_order_completed(event)
    service.on_order_completed(event)  # the same delivery again
    service.on_order_completed(completed())  # another event for the same order
    assert len(mailer.sent) == 1


def test_a_failed_send_raises_for_a_retry_and_the_retry_sends_it(service, mailer):
    mailer.failures = 2
    for _ in range(2):
        with pytest.raises(MailNotSent):
            service.on_order_completed(completed())
        assert service.get_email(ORDER)["state"] == "pending"
    assert [e["orderId"] for e in service.unsent()] == [ORDER]
    assert "503" in service.get_email(ORDER)["lastError"]
    service.on_order_completed(completed())
    assert len(mailer.sent) == 1 and service.get_email(ORDER)["attempts"] == 3 and service.unsent() == []


def test_an_email_leased_by_another_worker_is_retried_later_not_sent_twice(service, store, mailer):
    with store.transaction() as tx:
        service_layer.record(tx, domain.compose(events.parse(events.ORDER_COMPLETED, completed()),
                                                MailSettings(mailer, "x@example.com", "http://x")))
    with store.transaction() as tx:
        assert service_layer.take_lease(tx, ORDER, unsent_only=True)  # another worker is sending it now
    with pytest.raises(domain.SendInProgress):
        service.on_order_completed(completed())
    with pytest.raises(Conflict):
        service.resend(ORDER)
    assert mailer.sent == []


def test_resend_sends_the_stored_email_again(service, mailer):
    with pytest.raises(NotFound):
        service.resend(ORDER)
    service.on_order_completed(completed())
    log = service.resend(ORDER)
    assert len(mailer.sent) == 2 and mailer.sent[0] == mailer.sent[1]
    assert log["sends"] == 2 and log["state"] == "sent"


def test_without_sendgrid_emails_are_eml_files_named_by_order(tmp_path):
    mailer = mailer_for(ConfirmationSettings(mail_outbox_dir=str(tmp_path / "mail")))
    assert isinstance(mailer, OutboxDirMailer)
    settings = MailSettings(mailer, "Ticketing <tickets@example.com>", "http://localhost:8080")
    message = domain.compose(events.parse(events.ORDER_COMPLETED, completed(price="20")), settings)
    assert mailer.send(message) == f"file:{tmp_path / 'mail' / (ORDER + '.eml')}"
    parsed = email.message_from_bytes((tmp_path / "mail" / f"{ORDER}.eml").read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "bob@example.com" and parsed["Message-ID"] == f"<order-{ORDER}@ticketing>"
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "$20.00" in text and f"http://localhost:8080/orders/{ORDER}" in text and ORDER in html
    assert list((tmp_path / "mail").iterdir()) == [tmp_path / "mail" / f"{ORDER}.eml"]  # no scratch file left


def test_with_a_key_emails_go_through_sendgrid():
    from services.confirmation.mailers import SendGridMailer

    mailer = mailer_for(ConfirmationSettings(sendgrid_api_key="SG.test", sendgrid_host="http://127.0.0.1:9"))
    assert isinstance(mailer, SendGridMailer) and mailer.client.host == "http://127.0.0.1:9"


def test_a_second_record_of_an_order_keeps_the_first_email(store, mailer):
    settings = MailSettings(mailer, "x@example.com", "http://x")
    first = domain.compose(events.parse(events.ORDER_COMPLETED, completed(title="First")), settings)
    second = domain.compose(events.parse(events.ORDER_COMPLETED, completed(title="Second")), settings)
    for email in (first, second, first):
        with store.transaction() as tx:
            service_layer.record(tx, email)
    assert service_layer.stored_email(store, ORDER, settings).subject == first.subject


def test_without_a_lease_a_sent_email_is_a_duplicate_and_an_unsent_one_is_in_progress():
    assert domain.without_lease(ORDER, "sent") is False
    for state in ("pending", None):
        with pytest.raises(domain.SendInProgress):
            domain.without_lease(ORDER, state)
