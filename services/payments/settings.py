"""The payments service's settings (see :mod:`services.common.settings`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.common.settings import ServiceSettings, not_negative, positive, setting

from . import domain


@dataclass(frozen=True)
class PaymentsSettings(ServiceSettings):
    service: ClassVar[str] = "payments"

    payments_database_url: str | None = setting(None, "payments' database (default: a SQLite file under VAR_DIR)")
    stripe_key: str | None = setting(None, "Stripe secret key (unset: the offline sandbox processor)")
    stripe_api_base: str | None = setting(None, "where the Stripe library sends its requests (tests)")
    stripe_timeout: float = setting(30.0, "seconds one Stripe request may take", check=positive)
    payments_reconcile_interval: float = setting(domain.RECONCILE_INTERVAL, "how often charges of unknown outcome are replayed",
                                                 check=positive)
    payments_reconcile_min_age: float = setting(domain.RECONCILE_MIN_AGE, "a charge attempt this old with no outcome is replayed",
                                                check=not_negative)
    payments_reconcile_give_up_age: float = setting(domain.RECONCILE_GIVE_UP_AGE, "a charge attempt this old is abandoned to operators",
                                                    check=not_negative)
    payments_hold_sweep_interval: float = setting(domain.HOLD_SWEEP_INTERVAL, "how often the hold sweep runs", check=positive)
    payments_hold_grace: float = setting(
        domain.HOLD_GRACE, "a charge attempt whose payer died before charging is dropped (its hold released) after this",
        check=not_negative)
