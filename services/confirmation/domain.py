"""Confirmation rules, without a database: what the email says, what is kept of it, when it may be
sent (a lease), and what a redelivery finds.

The service layer (:mod:`services.confirmation.service_layer`) owns the steps (claim, send,
mark sent, each its own transaction), loads and saves through
:mod:`services.confirmation.repository` and sends through :mod:`services.confirmation.mailers`.
"""
from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from services.common import events
from services.common.handlers import NotYetApplicable
from services.common.validation import header_safe

from .mailers import Email, MailSettings
from .models import SentEmail

log = logging.getLogger(__name__)

#: longer than a send can take (the provider timeout is 10 s), short enough to take over a dead worker soon
LEASE_SECONDS = 60


class SendInProgress(NotYetApplicable):
    """Another worker holds the lease on this email right now; try again later."""


def compose(event: events.OrderCompleted, settings: MailSettings) -> Email:
    title, order_id = event.ticket.title, event.id
    price = f"${Decimal(event.ticket.price):,.2f}"
    link = f"{settings.public_url}/orders/{order_id}"
    # Titles are validated on the way in; header_safe guards the one-line Subject against any
    # CR/LF stored before that (the mailer would refuse it and the email would be parked forever).
    subject = header_safe(f"Your ticket for {title}: order confirmed")
    text = (
        "Hi,\n\n"
        "Thanks for your purchase: your order is complete and the ticket is yours.\n\n"
        f"Ticket: {title}\n"
        f"Price:  {price}\n"
        f"Order:  {order_id}\n\n"
        f"See your order at {link}\n\n"
        "-- Ticketing\n"
    )
    e = html.escape
    body = (
        "<!doctype html><html><body style=\"font-family: sans-serif\">"
        "<p>Hi,</p><p>Thanks for your purchase: your order is complete and the ticket is yours.</p>"
        "<table>"
        f"<tr><th align=\"left\">Ticket</th><td>{e(title)}</td></tr>"
        f"<tr><th align=\"left\">Price</th><td>{e(price)}</td></tr>"
        f"<tr><th align=\"left\">Order</th><td>{e(order_id)}</td></tr>"
        "</table>"
        f"<p><a href=\"{e(link, quote=True)}\">See your order</a></p>"
        "<p>-- Ticketing</p></body></html>"
    )
    return Email(order_id=order_id, user_id=event.userId, to=header_safe(event.userEmail), subject=subject, text=text,
                 html=body, sender=settings.sender)


def kept(email: Email, now: datetime) -> SentEmail:
    """The row that keeps an order's email (pending, never tried)."""
    return SentEmail(order_id=email.order_id, user_id=email.user_id, to_email=email.to, subject=email.subject,
                     text=email.text, html=email.html, state=SentEmail.PENDING, attempts=0, sends=0,
                     created_at=now)


def stored(row: SentEmail, settings: MailSettings) -> Email:
    """The email kept in ``row``, as it is sent (the first recorded version is the one sent)."""
    return Email(order_id=row.order_id, user_id=row.user_id, to=row.to_email, subject=row.subject,
                 text=row.text, html=row.html, sender=settings.sender)


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=LEASE_SECONDS)


def without_lease(order_id: str, state: str | None) -> bool:
    """No lease on the email of ``order_id``: False if it was sent (a duplicate event, nothing to
    do); else another worker is sending it: :class:`SendInProgress`, retried later."""
    if state == SentEmail.SENT:
        log.info("confirmation of order %s was already sent; dropping the duplicate event", order_id)
        return False
    raise SendInProgress(f"the confirmation of order {order_id} is being sent by another worker")
