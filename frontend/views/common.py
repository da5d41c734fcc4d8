"""What every view needs: the form state, who is signed in, safe redirects."""
from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode, urlsplit

from flask import redirect, request

from ..api import ApiError, gateway


class Form:
    """Typed values and errors of one HTML form, errors keyed by the API's `field`."""

    def __init__(self, fields: tuple[str, ...], values: dict | None = None):
        self.fields = fields
        self.values = {name: "" for name in fields}
        self.values.update(values or {})
        self.errors: dict[str, list[str]] = {}
        self.general: list[str] = []

    @classmethod
    def from_request(cls, fields, keep=None):
        """The posted values of `fields`; only those in `keep` are sent back to the page."""
        keep = fields if keep is None else keep
        form = cls(fields, {name: request.form.get(name, "") for name in fields})
        form.posted = {name: request.form.get(name, "") for name in fields}
        for name in fields:
            if name not in keep:
                form.values[name] = ""
        return form

    def add(self, field: str | None, message: str):
        if field in self.fields:
            self.errors.setdefault(field, []).append(message)
        else:
            self.general.append(message)

    def add_api_error(self, exc: ApiError, default_field: str | None = None):
        for error in exc.errors:
            self.add(error.get("field") or default_field, error.get("message") or "Invalid value")

    def error(self, field: str) -> str | None:
        return " ".join(self.errors.get(field, [])) or None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.general


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (not another host), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in target:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def signin_url(next_target: str | None = None) -> str:
    target = local_path(next_target)
    if target and target.rstrip("?") not in ("/", ""):
        return "/auth/signin?" + urlencode({"next": target.rstrip("?")})
    return "/auth/signin"


def current_user():
    return gateway().current_user()


def require_user():
    """The signed-in user, or a redirect to sign in that comes back here."""
    user = current_user()
    if user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else request.referrer
        return None, redirect(signin_url(target))
    return user, None


def new_request_key() -> str:
    """A fresh Idempotency-Key for a form being rendered (kept in a hidden field): submitting the
    same rendered form again, e.g. a browser's retry after a timeout, is the same request to the API."""
    return uuid.uuid4().hex


def posted_request_key() -> str | None:
    """The form's Idempotency-Key, if it is one of ours."""
    key = request.form.get("idempotency_key", "")
    return key if re.fullmatch(r"[0-9a-f]{32}", key) else None
