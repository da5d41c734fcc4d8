"""The confirmation service layer: sending an order's email once, in steps of their own.

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
leased by another worker raises :class:`~services.confirmation.domain.SendInProgress`, which the handler
retries later (so a worker that died mid-send is taken over once its lease
runs out, and nothing is lost). The only window for a duplicate is a crash
after the provider accepted the email and before step 3 committed: we chose a
rare duplicate there over a lost email (recording "sent" first would turn the
same crash into an email never sent). The Message-ID is the same on every send
of one order's email, which lets mail clients fold such a duplicate.

:mod:`services.confirmation.service` calls one function here; each step opens its own
transaction (``store``: the service's :class:`~services.common.store.Store`), reads and writes
through :mod:`~services.confirmation.repository`, asks :mod:`~services.confirmation.domain`
what the rules say, and sends through the mailer of ``settings``
(:class:`~services.confirmation.mailers.MailSettings`) outside any transaction.
"""
from __future__ import annotations

import logging
import uuid

from services.common import events, metrics
from services.common.errors import Conflict, NotFound
from services.common.validation import is_valid_id

from . import domain, repository
from .mailers import Email, MailSettings

log = logging.getLogger(__name__)


def record(tx, email: Email) -> None:
    """Keep the email of an order (the first one wins; a redelivery changes nothing)."""
    repository.record(tx.session, domain.kept(email, events.utcnow()))


def take_lease(tx, order_id: str, *, unsent_only: bool) -> str | None:
    """Lease the email of ``order_id`` for sending; the lease token, or None if it is sent or leased."""
    now = events.utcnow()
    token = uuid.uuid4().hex
    taken = repository.take_lease(tx.session, order_id, token, now, domain.lease_until(now), unsent_only=unsent_only)
    return token if taken else None


def _send_leased(store, settings: MailSettings, email: Email, lease: str) -> str:
    mailer = settings.mailer
    try:
        message_id = mailer.send(email)
    except Exception as exc:
        metrics.EMAILS.labels("failed").inc()
        with store.transaction() as tx:
            repository.give_back(tx.session, email.order_id, lease, f"{type(exc).__name__}: {exc}")
        raise
    metrics.EMAILS.labels("sent").inc()
    with store.transaction() as tx:
        repository.mark_sent(tx.session, email.order_id, lease, mailer.name, message_id, events.utcnow())
    return message_id


def confirm_order(store, settings: MailSettings, event: events.OrderCompleted) -> bool:
    """order:completed: send the order's confirmation unless it was sent. True if sent now."""
    email = domain.compose(event, settings)
    with store.transaction() as tx:
        record(tx, email)
    with store.transaction() as tx:
        lease = take_lease(tx, email.order_id, unsent_only=True)
        state = repository.state_of(tx.session, email.order_id) if lease is None else None
    if lease is None:
        return domain.without_lease(email.order_id, state)
    email = stored_email(store, email.order_id, settings)  # the first recorded version is the one sent
    message_id = _send_leased(store, settings, email, lease)
    log.info("sent the confirmation of order %s to %s (%s)", email.order_id, email.to, message_id)
    return True


def stored_email(store, order_id: str, settings: MailSettings) -> Email:
    with store.read() as session:
        row = repository.find(session, order_id)
        if row is None:
            raise NotFound("No confirmation email for this order")
        return domain.stored(row, settings)


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
        row = repository.find(session, order_id) if is_valid_id(order_id) else None
        if row is None:
            raise NotFound("No confirmation email for this order")
        return row.to_dict()


def unsent(store, limit: int = 100) -> list[dict]:
    with store.read() as session:
        return [row.to_dict() for row in repository.unsent(session, limit)]
