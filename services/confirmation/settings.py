"""The confirmation service's settings (see :mod:`services.common.settings`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from services.common.settings import ServiceSettings, at_least_one, positive, setting

from .mailers import DEFAULT_FROM


@dataclass(frozen=True)
class ConfirmationSettings(ServiceSettings):
    service: ClassVar[str] = "confirmation"

    confirmation_database_url: str | None = setting(
        None, "confirmation's database (default: a SQLite file under VAR_DIR)")
    sendgrid_api_key: str | None = setting(None, "SendGrid key (unset: emails are written as .eml files)")
    sendgrid_host: str | None = setting(None, "where the SendGrid library sends its requests (tests)")
    mail_send_timeout: float = setting(10.0, "seconds one SendGrid request may take", check=positive)
    mail_outbox_dir: str | None = setting(None, "where .eml files go without SendGrid (default: $VAR_DIR/mail)")
    mail_from: str = setting(DEFAULT_FROM, "sender of confirmation emails")
    mail_max_attempts: int | None = setting(
        None, "tries of one email before it is parked (unset: retried for HANDLER_RETRY_FOR_SECONDS)",
        check=at_least_one)

    def __post_init__(self):
        super().__post_init__()
        if self.mail_outbox_dir is None:
            self._derive("mail_outbox_dir", str(Path(self.var_dir).resolve() / "mail"))
