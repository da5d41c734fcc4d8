"""Errors that cross RPC boundaries and map to HTTP status codes in one place.

Services raise these; nameko serialises them; the gateway gets the same class
back (they are registered with ``deserialize_to_instance``) and turns it into
``{"errors": [{"message": ..., "field": ...}]}`` with :attr:`status`.
"""
from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


class TicketingError(Exception):
    status = 500

    def __init__(self, message: str = "Something went wrong", field: str | None = None,
                 more: list[dict] | None = None):
        # args are what nameko sends across RPC; None would arrive as the string "None"
        super().__init__(*((message, field, more) if more else (message, field) if field else (message,)))
        self.message = message
        self.field = field
        #: further errors of the same request (e.g. every bad field of a form), as dicts
        self.more = list(more or [])

    def errors(self) -> list[dict]:
        return [self.to_dict(), *self.more]

    def to_dict(self) -> dict:
        error = {"message": self.message}
        if self.field:
            error["field"] = self.field
        return error

    def __str__(self) -> str:
        return self.message


@deserialize_to_instance
class BadRequest(TicketingError):
    status = 400


@deserialize_to_instance
class NotAuthorized(TicketingError):
    status = 401

    def __init__(self, message: str = "Not authorized", field: str | None = None):
        super().__init__(message, field)


@deserialize_to_instance
class PaymentDeclined(TicketingError):
    status = 402


@deserialize_to_instance
class Forbidden(TicketingError):
    status = 403

    def __init__(self, message: str = "Forbidden", field: str | None = None):
        super().__init__(message, field)


@deserialize_to_instance
class NotFound(TicketingError):
    status = 404

    def __init__(self, message: str = "Not found", field: str | None = None):
        super().__init__(message, field)


@deserialize_to_instance
class Conflict(TicketingError):
    status = 409


@deserialize_to_instance
class TooManyRequests(TicketingError):
    status = 429

    def __init__(self, message: str = "Too many attempts, try again later", field: str | None = None):
        super().__init__(message, field)


@deserialize_to_instance
class ServiceUnavailable(TicketingError):
    status = 503

    def __init__(self, message: str = "Service unavailable, try again shortly", field: str | None = None):
        super().__init__(message, field)


@deserialize_to_instance
class UnsupportedMediaType(TicketingError):
    status = 415

    def __init__(self, message: str = "Request body must be application/json", field: str | None = None):
        super().__init__(message, field)
