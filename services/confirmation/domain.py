"""Confirmation rules: what the email says, and sending it once per order.

Exactly once, as far as a remote provider allows. The order of writes is
*claim, send, mark sent*, each its own step:

1. claim: insert the email (order id is the primary key, so a second
   ``order:completed`` for the order finds the row) and take a short lease on
   it with a conditional UPDATE (only if not sent and not leased), committed;
2. send it through the provider, outside any transaction;
3. mark it sent (same lease), committed. A failed send gives the lease back
   and raises, so the event handler retries it with back-off and finally
   parks it.

A redelivered event for a sent email does nothing. One for an email still
leased by another worker raises :class:`SendInProgress`, which the handler
retries later (so a worker that died mid-send is taken over once its lease
runs out, and nothing is lost). The only window for a duplicate is a crash
after the provider accepted the email and before step 3 committed: we chose a
rare duplicate there over a lost email (recording "sent" first would turn the
same crash into an email never sent). The Message-ID is the same on every send
of one order's email, which lets mail clients fold such a duplicate.
"""
from __future__ import annotations

import html
import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from services.common import events, metrics
from services.common.errors import Conflict, NotFound
from services.common.handlers import NotYetApplicable
from services.common.validation import header_safe, is_valid_id

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


def record(tx, email: Email) -> None:
    """Keep the email of an order (the first one wins; a redelivery changes nothing)."""
    if tx.session.get(SentEmail, email.order_id) is not None:
        return
    tx.session.add(SentEmail(order_id=email.order_id, user_id=email.user_id, to_email=email.to,
                             subject=email.subject, text=email.text, html=email.html, state=SentEmail.PENDING,
                             attempts=0, sends=0, created_at=events.utcnow()))
    try:
        tx.session.flush()
    except IntegrityError:  # a concurrent delivery inserted it first: same email
        tx.session.rollback()


def take_lease(tx, order_id: str, *, unsent_only: bool) -> str | None:
    """Lease the email of ``order_id`` for sending; the lease token, or None if it is sent or leased."""
    now = events.utcnow()
    token = uuid.uuid4().hex
    query = (update(SentEmail)
             .where(SentEmail.order_id == order_id,
                    or_(SentEmail.lease_until.is_(None), SentEmail.lease_until < now))
             .values(lease_token=token, lease_until=now + timedelta(seconds=LEASE_SECONDS),
                     attempts=SentEmail.attempts + 1)
             .execution_options(synchronize_session=False))
    if unsent_only:
        query = query.where(SentEmail.state == SentEmail.PENDING)
    return token if tx.session.execute(query).rowcount == 1 else None


def state_of(session, order_id: str) -> str | None:
    return session.scalar(select(SentEmail.state).where(SentEmail.order_id == order_id))


def mark_sent(tx, order_id: str, lease: str, provider: str, message_id: str) -> None:
    tx.session.execute(
        update(SentEmail).where(SentEmail.order_id == order_id, SentEmail.lease_token == lease)
        .values(state=SentEmail.SENT, sends=SentEmail.sends + 1, sent_at=events.utcnow(), provider=provider,
                provider_message_id=message_id[:500], last_error=None, lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False))


def give_back(tx, order_id: str, lease: str, error: str) -> None:
    tx.session.execute(
        update(SentEmail).where(SentEmail.order_id == order_id, SentEmail.lease_token == lease)
        .values(last_error=error[:2000], lease_token=None, lease_until=None)
        .execution_options(synchronize_session=False))


def _send_leased(store, settings: MailSettings, email: Email, lease: str) -> str:
    mailer = settings.mailer
    try:
        message_id = mailer.send(email)
    except Exception as exc:
        metrics.EMAILS.labels("failed").inc()
        with store.transaction() as tx:
            give_back(tx, email.order_id, lease, f"{type(exc).__name__}: {exc}")
        raise
    metrics.EMAILS.labels("sent").inc()
    with store.transaction() as tx:
        mark_sent(tx, email.order_id, lease, mailer.name, message_id)
    return message_id


def confirm_order(store, settings: MailSettings, event: events.OrderCompleted) -> bool:
    """order:completed: send the order's confirmation unless it was sent. True if sent now."""
    email = compose(event, settings)
    with store.transaction() as tx:
        record(tx, email)
    with store.transaction() as tx:
        lease = take_lease(tx, email.order_id, unsent_only=True)
        state = state_of(tx.session, email.order_id) if lease is None else None
    if lease is None:
        if state == SentEmail.SENT:
            log.info("confirmation of order %s was already sent; dropping the duplicate event", email.order_id)
            return False
        raise SendInProgress(f"the confirmation of order {email.order_id} is being sent by another worker")
    email = stored_email(store, email.order_id, settings)  # the first recorded version is the one sent
    message_id = _send_leased(store, settings, email, lease)
    log.info("sent the confirmation of order %s to %s (%s)", email.order_id, email.to, message_id)
    return True


def stored_email(store, order_id: str, settings: MailSettings) -> Email:
    with store.read() as session:
        row = session.get(SentEmail, order_id)
        if row is None:
            raise NotFound("No confirmation email for this order")
        return Email(order_id=row.order_id, user_id=row.user_id, to=row.to_email, subject=row.subject,
                     text=row.text, html=row.html, sender=settings.sender)


def resend(store, settings: MailSettings, order_id: str) -> dict:
    """Operators: send an order's confirmation again (sent or not, e.g. after it was parked)."""
    if not is_valid_id(order_id):
        raise NotFound("No confirmation email for this order")
    email = stored_email(store, order_id, settings)
    with store.transaction() as tx:
        lease = take_lease(tx, order_id, unsent_only=False)
    if lease is None:
        raise Conflict("This email is being sent right now; try again in a minute")
    _send_leased(store, settings, email, lease)
    log.info("re-sent the confirmation of order %s to %s", order_id, email.to)
    return describe(store, order_id)


def describe(store, order_id: str) -> dict:
    with store.read() as session:
        row = session.get(SentEmail, order_id) if is_valid_id(order_id) else None
        if row is None:
            raise NotFound("No confirmation email for this order")
        return row.to_dict()


def unsent(store, limit: int = 100) -> list[dict]:
    with store.read() as session:
        rows = session.scalars(select(SentEmail).where(SentEmail.state == SentEmail.PENDING)
                               .order_by(SentEmail.created_at).limit(limit)).all()
        return [row.to_dict() for row in rows]
