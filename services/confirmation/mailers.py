"""Ways to send an email, behind one small interface, chosen by configuration.

``SENDGRID_API_KEY`` set    -> :class:`SendGridMailer`, the official ``sendgrid`` library
                               (``SENDGRID_HOST`` points it elsewhere, e.g. at the tests' fake SendGrid)
``SENDGRID_API_KEY`` unset  -> :class:`OutboxDirMailer`: ``<MAIL_OUTBOX_DIR>/<order id>.eml``

``send(email)`` returns the provider's message id or raises
:class:`MailNotSent` (a 5xx, a 429, a timeout, a refused connection...), which
the event handler retries with back-off. The choice and its options are
confirmation's settings (:class:`services.confirmation.settings.ConfirmationSettings`).
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nameko.extensions import DependencyProvider

from services.common.settings import settings_of

if TYPE_CHECKING:
    from .settings import ConfirmationSettings

log = logging.getLogger(__name__)

DEFAULT_FROM = "Ticketing <tickets@ticketing.local>"


@dataclass(frozen=True)
class Email:
    order_id: str
    user_id: str
    to: str
    subject: str
    text: str
    html: str
    sender: str = DEFAULT_FROM

    @property
    def message_id(self) -> str:
        # The same Message-ID on every send of one order's email lets mail clients fold a resend.
        return f"<order-{self.order_id}@ticketing>"


class MailNotSent(Exception):
    """The provider did not take the email; try again later."""


class Mailer(Protocol):
    name: str

    def send(self, email: Email) -> str:
        """Hand the email over; return the provider's message id."""


class OutboxDirMailer:
    """Development and tests: each email is an RFC 5322 ``.eml`` file named by its order id."""

    name = "eml"

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    def path_for(self, order_id: str) -> Path:
        return self.directory / f"{order_id}.eml"

    def send(self, email: Email) -> str:
        message = EmailMessage()
        message["From"] = email.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = email.message_id
        message["X-Ticketing-Order"] = email.order_id
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # write then rename: a reader never sees half a file, a crash leaves no partial one
            fd, scratch = tempfile.mkstemp(dir=self.directory, prefix=".sending-", suffix=".eml")
            with os.fdopen(fd, "wb") as handle:
                handle.write(bytes(message))
            path = self.path_for(email.order_id)
            os.replace(scratch, path)
        except OSError as exc:
            raise MailNotSent(f"cannot write to {self.directory}: {exc}") from exc
        return f"file:{path}"


class SendGridMailer:
    """Production: SendGrid's v3 mail API through the official library."""

    name = "sendgrid"

    def __init__(self, api_key: str, host: str | None = None, timeout: float = 10.0):
        import sendgrid

        self.client = sendgrid.SendGridAPIClient(api_key=api_key, host=(host or "https://api.sendgrid.com").rstrip("/"))
        self.client.client.timeout = timeout

    def send(self, email: Email) -> str:
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import CustomArg, Header, Mail

        message = Mail(from_email=email.sender, to_emails=email.to, subject=email.subject,
                       plain_text_content=email.text, html_content=email.html)
        message.header = Header("Message-ID", email.message_id)
        message.custom_arg = CustomArg("order_id", email.order_id)
        try:
            response = self.client.send(message)
        except HTTPError as exc:
            # 429 and 5xx are transient; other 4xx (bad key, bad request) need an operator, but
            # retrying then parking loses nothing either, and resend works once fixed.
            raise MailNotSent(f"SendGrid answered {exc.status_code}: {exc.body!r}"[:500]) from None
        except (OSError, socket.timeout) as exc:  # URLError, refused connections and timeouts
            raise MailNotSent(f"SendGrid unreachable: {exc!r}"[:500]) from None
        if not 200 <= response.status_code < 300:
            raise MailNotSent(f"SendGrid answered {response.status_code}")
        headers = response.headers or {}
        return headers.get("X-Message-Id") or headers.get("x-message-id") or ""


def mailer_for(settings: ConfirmationSettings) -> Mailer:
    """SendGrid with ``SENDGRID_API_KEY``, else ``.eml`` files in ``MAIL_OUTBOX_DIR``."""
    if settings.sendgrid_api_key:
        host = settings.sendgrid_host
        log.info("confirmation: sending through SendGrid%s", f" at {host}" if host else "")
        return SendGridMailer(settings.sendgrid_api_key, host, timeout=settings.mail_send_timeout)
    directory = settings.mail_outbox_dir
    log.info("confirmation: SENDGRID_API_KEY is not set; writing emails as .eml files to %s", directory)
    return OutboxDirMailer(directory)


@dataclass(frozen=True)
class MailSettings:
    mailer: Mailer
    sender: str
    public_url: str


class MailService(DependencyProvider):
    """Gives workers the mailer the configuration asks for, the sender and the public URL for links."""

    def setup(self):
        from .settings import ConfirmationSettings  # it names this module's default sender

        settings = settings_of(self.container, ConfirmationSettings)
        self.settings = MailSettings(mailer_for(settings), settings.mail_from, settings.public_url)

    def get_dependency(self, worker_ctx):
        return self.settings
