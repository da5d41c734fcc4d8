"""The confirmation service on a real broker, sending through the fake SendGrid with the real library.

Retries go through the real delay queues (1 s, 2 s ...), so MAIL_MAX_ATTEMPTS
is 3 here to keep the failing cases to a few seconds.
"""
import email
import email.policy
from decimal import Decimal
import eventlet
import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import get_extension

from services.common import events
from services.confirmation.service import ConfirmationService, MailRetries
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://tickets.example.com"


@pytest.fixture(scope="module")
def fake_sendgrid():
    fake = FakeSendGrid()
    yield fake
    fake.stop()


def completed(n, title="Concert", price="20.50"):
    order_id = f"{n:032x}"
    return order_id, events.new_event(events.ORDER_COMPLETED, id=order_id, version=2, userId="b" * 32,
                                      userEmail="bob@example.com",
                                      ticket={"id": "7" * 32, "title": title, "price": Decimal(price)})


def messages_in(amqp_uri, queue_name):
    """Messages ready in a queue, now (the management API's figures lag by seconds)."""
    with Connection(amqp_uri) as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue_name, passive=True).message_count
        except Exception:  # not declared yet
            return 0


class Confirmation:
    def __init__(self, container, config):
        self.container, self.config = container, config
        self.dispatch = event_dispatcher({"AMQP_URI": config["AMQP_URI"]})
        self.handler = get_extension(container, MailRetries, method_name="on_order_completed")

    def publish(self, payload):
        self.dispatch("orders", events.ORDER_COMPLETED, payload)

    def rpc(self):
        return ServiceRpcProxy("confirmation", self.config)

    def log(self, order_id):
        with self.rpc() as confirmation:
            return confirmation.get_email(order_id)


@pytest.fixture
def make_confirmation(container_factory, service_config, database_url, tmp_path):
    def make(**settings):
        config = {**service_config("confirmation", database_url), "PUBLIC_URL": PUBLIC_URL,
                  "MAIL_FROM": "Ticketing <tickets@example.com>", "MAIL_MAX_ATTEMPTS": "3",
                  "MAIL_OUTBOX_DIR": str(tmp_path / "mail"), **settings}
        container = container_factory(ConfirmationService, config)
        container.start()
        return Confirmation(container, config)

    return make


@pytest.fixture
def sendgrid(make_confirmation, fake_sendgrid):
    fake_sendgrid.reset()
    return make_confirmation(SENDGRID_API_KEY="SG.test-key", SENDGRID_HOST=fake_sendgrid.url)


def test_one_email_per_order_even_when_order_completed_comes_twice(sendgrid, fake_sendgrid):
    order_id, event = completed(1)
    sendgrid.publish(event)
    sendgrid.publish(event)  # redelivered
    _, again = completed(1)
    sendgrid.publish(again)  # or published twice, under another event id
    wait_for(lambda: fake_sendgrid.mails_for(order_id))
    eventlet.sleep(0.5)
    mail, = fake_sendgrid.mails_for(order_id)
    assert mail["personalizations"][0]["to"] == [{"email": "bob@example.com"}]
    assert mail["from"] == {"email": "tickets@example.com", "name": "Ticketing"}
    text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
    html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
    for part in ("Concert", "$20.50", order_id, f"{PUBLIC_URL}/orders/{order_id}"):
        assert part in text and part in html
    assert "Concert" in mail["subject"]
    assert fake_sendgrid.requests[0]["headers"]["authorization"] == "Bearer SG.test-key"
    log = sendgrid.log(order_id)
    assert (log["state"], log["sends"], log["providerMessageId"]) == ("sent", 1, mail["message_id"])


def test_sendgrid_failing_twice_then_succeeding_sends_one_email(sendgrid, fake_sendgrid):
    fake_sendgrid.fail_next(1, status=503)
    fake_sendgrid.fail_next(1, status=429)
    order_id, event = completed(2)
    sendgrid.publish(event)
    wait_for(lambda: fake_sendgrid.mails_for(order_id), timeout=10)  # after 1 s + 2 s of back-off
    eventlet.sleep(0.3)
    assert len(fake_sendgrid.mails_for(order_id)) == 1 and len(fake_sendgrid.requests) == 3
    log = sendgrid.log(order_id)
    assert (log["state"], log["attempts"], log["sends"]) == ("sent", 3, 1)


def test_always_failing_is_parked_after_n_tries_and_resend_works_once_it_recovers(sendgrid, fake_sendgrid):
    fake_sendgrid.fail_always(status=500)
    order_id, event = completed(3)
    sendgrid.publish(event)
    parked = f"{sendgrid.handler.queue.name}.parked"
    wait_for(lambda: messages_in(sendgrid.config["AMQP_URI"], parked) == 1, timeout=10)  # after 1 s + 2 s
    assert sendgrid.handler.max_attempts == 3 and len(fake_sendgrid.requests) == 3
    assert fake_sendgrid.mails == []
    with sendgrid.rpc() as confirmation:
        pending, = confirmation.unsent()
        assert pending["orderId"] == order_id and pending["attempts"] == 3 and "500" in pending["lastError"]

        fake_sendgrid.recover()
        log = confirmation.resend(order_id)
    assert (log["state"], log["sends"]) == ("sent", 1)
    mail, = fake_sendgrid.mails_for(order_id)
    assert f"{PUBLIC_URL}/orders/{order_id}" in mail["content"][0]["value"]


def test_without_sendgrid_the_email_is_an_eml_file(make_confirmation, tmp_path, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    confirmation = make_confirmation()
    order_id, event = completed(4, title="Opera", price="99")
    confirmation.publish(event)
    path = tmp_path / "mail" / f"{order_id}.eml"
    wait_for(path.exists)
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "bob@example.com" and "Opera" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "$99.00" in text and f"{PUBLIC_URL}/orders/{order_id}" in text
    wait_for(lambda: confirmation.log(order_id)["state"] == "sent")
