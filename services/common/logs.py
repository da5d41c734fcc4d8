"""Logs: one JSON object per line, carrying the correlation id and the ids in play.

Every component logs through :func:`setup` (or the nameko ``LOGGING`` dict of
:func:`dict_config`, the same thing). A line looks like::

    {"time": "2026-12-01T10:00:00.123Z", "level": "INFO", "component": "orders",
     "logger": "services.orders.service", "message": "order 9f… expired",
     "correlation_id": "c0ffee…", "order_id": "9f…", "event_id": "5e…"}

**Correlation id.** The gateway takes it from the request's ``X-Request-ID``
(or makes one) and returns it in the response's ``X-Request-ID``. It travels
as the nameko context key ``correlation_id`` (AMQP header
``nameko.correlation_id``): nameko copies a worker's context data into every
RPC and event the worker makes, the outbox stores it with each row so the
relay publishes it even after a restart, and the expiry and retry messages
keep it in their headers. Each worker puts it, with the ids it can see in its
arguments (user, order, ticket, payment, event), into a context variable
that every log line of that worker reads (:class:`ContextFilter`).

**Expected errors** (a 4xx :class:`~services.common.errors.TicketingError`: not
found, conflict, declined ...) are answers, not failures: they are logged at
INFO, one line, without a traceback (:class:`ExpectedErrors`).
"""
from __future__ import annotations

import collections
import contextvars
import json
import logging
import logging.config
import os
import re
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager

#: the nameko context key (and, prefixed with "nameko.", the AMQP header) of the correlation id
CORRELATION_KEY = "correlation_id"
CORRELATION_HEADER = "nameko." + CORRELATION_KEY
#: the HTTP header a client may send and always gets back
REQUEST_ID_HEADER = "X-Request-ID"
#: the ids a log line may carry, in the order they are printed
IDS = ("correlation_id", "user_id", "order_id", "ticket_id", "payment_id", "event_id")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("ticketing_log_context", default={})
_component = "ticketing"


# -- the context of the current request / worker ------------------------------------------

def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The client's request id if it is a sane token (no spaces, quotes, newlines), else a new one."""
    value = (value or "").strip()
    return value if _VALID_REQUEST_ID.match(value) else new_correlation_id()


def current() -> dict:
    """The ids bound to what runs now (a copy)."""
    return dict(_context.get())


def correlation_id() -> str | None:
    return _context.get().get(CORRELATION_KEY)


def bind(**ids) -> None:
    """Add ids to the current context (``bind(order_id=order.id)`` once a new order has its id)."""
    _context.set({**_context.get(), **{k: str(v) for k, v in ids.items() if v not in (None, "")}})


def start(**ids) -> contextvars.Token:
    """Replace the context (a new request or worker); undo with :func:`reset`."""
    return _context.set({k: str(v) for k, v in ids.items() if v not in (None, "")})


def reset(token: contextvars.Token | None = None) -> None:
    if token is not None:
        try:
            _context.reset(token)
            return
        except ValueError:  # set in another context (thread/greenlet): just clear ours
            pass
    _context.set({})


@contextmanager
def scope(**ids):
    """``with logs.scope(correlation_id=…, order_id=…):`` a context for a block of code."""
    token = start(**ids)
    try:
        yield
    finally:
        reset(token)


def headers() -> dict:
    """AMQP headers that carry the current correlation id on a message published by hand."""
    cid = correlation_id()
    return {CORRELATION_HEADER: cid} if cid else {}


def ids_from_payload(payload, event_type: str | None = None) -> dict:
    """The ids an event (or expiry message) names: ``id`` is the entity its type is about."""
    if not isinstance(payload, dict):
        return {}
    found = {}
    entity = (event_type or "").split(":", 1)[0]
    if payload.get("id") and entity in ("order", "ticket", "payment"):
        found[f"{entity}_id"] = payload["id"]
    for key, name in (("eventId", "event_id"), ("orderId", "order_id"), ("userId", "user_id")):
        if payload.get(key):
            found.setdefault(name, payload[key])
    ticket = payload.get("ticket")
    if isinstance(ticket, dict) and ticket.get("id"):
        found.setdefault("ticket_id", ticket["id"])
    return {k: str(v) for k, v in found.items()}


# -- formatting ----------------------------------------------------------------------------

def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class ContextFilter(logging.Filter):
    """Stamps each record with the component and the ids of the context it was logged in.

    Ids given explicitly (``log.info(..., extra={"order_id": …})``) win over the context."""

    def __init__(self, component: str | None = None):
        super().__init__()
        global _component
        if component:
            _component = component

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "component"):
            record.component = component_of(record.name)
        for key, value in _context.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def component_of(logger_name: str) -> str:
    """The process's component; in the one-origin web process, the app the logger belongs to."""
    if _component == "web":
        for app in ("gateway", "frontend"):
            if logger_name == app or logger_name.startswith(app + "."):
                return app
    return _component


class ExpectedErrors(logging.Filter):
    """A 4xx TicketingError is an answer the caller gets, not a failure: INFO, one line, no traceback.
    An event that came early (``NotYetApplicable``) is retried, and its handler says so at INFO.
    A 503 an entrypoint declares expected (e.g. "could not confirm your payment yet") is a WARNING,
    one line, no traceback: its cause was logged where it happened.

    nameko logs every exception an entrypoint raises with its traceback (WARNING when the
    entrypoint declares it expected, ERROR otherwise); this rewrites those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if getattr(exc, "logged_as_retry", False) and record.name.startswith("nameko"):
            return False  # an early event: the handler's own line says it is retried
        if is_expected(exc):
            level = logging.INFO
        elif _declared_expected_unavailable(record, exc):
            level = logging.WARNING
        else:
            return True
        record.msg, record.args = "%s answered %s: %s", (_worker_name(record), exc.status, exc.message)
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info, record.exc_text = None, None
        record.status = exc.status
        return logging.getLogger().isEnabledFor(level)


def _declared_expected_unavailable(record: logging.LogRecord, exc: BaseException) -> bool:
    from .errors import TicketingError

    return isinstance(exc, TicketingError) and exc.status == 503 and str(record.msg).startswith("(expected)")


def is_expected(exc: BaseException) -> bool:
    from .errors import TicketingError

    return isinstance(exc, TicketingError) and 400 <= exc.status < 500


def _worker_name(record: logging.LogRecord) -> str:
    # nameko's record: "... error handling worker %s: %s" with the WorkerContext first
    for arg in record.args or ():
        entrypoint = getattr(arg, "entrypoint", None)
        if entrypoint is not None:
            return f"{arg.service_name}.{entrypoint.method_name}"
    return record.name


_EXTRA_FIELDS = ("status", "method", "path", "route", "duration_ms", "queue", "attempt", "event", "count")


def record_to_dict(record: logging.LogRecord) -> dict:
    line = {
        "time": _iso(record.created),
        "level": record.levelname,
        "component": getattr(record, "component", None) or component_of(record.name),
        "logger": record.name,
        "message": record.getMessage(),
    }
    for key in IDS + _EXTRA_FIELDS:
        value = getattr(record, key, None)
        if value is not None:
            line[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        line["error"] = f"{type(exc).__name__}: {exc}"
        line["traceback"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif record.exc_text:
        line["traceback"] = record.exc_text
    return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_to_dict(record), default=str, ensure_ascii=False)


class RecentErrors(logging.Handler):
    """The last warnings and errors of this process, for ``/errors`` and ``ticketing status``.

    The web components log in gunicorn's worker processes but answer ``/errors`` from the
    master (their side port). So where processes share a directory (``PROMETHEUS_MULTIPROC_DIR``,
    which the web components set for their metrics), each also keeps its last ones in
    ``recent-errors-<pid>.json`` there, and :meth:`latest` answers for all of them."""

    FILE_PREFIX = "recent-errors-"

    def __init__(self, capacity: int = 20):
        super().__init__(level=logging.WARNING)
        self.capacity = capacity
        self.records: collections.deque = collections.deque(maxlen=capacity)
        self._guard = threading.Lock()
        self._pid = os.getpid()

    @staticmethod
    def shared_dir() -> str | None:
        return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

    def emit(self, record: logging.LogRecord) -> None:
        line = record_to_dict(record)
        line.pop("traceback", None)
        with self._guard:
            if self._pid != os.getpid():  # a forked worker: what the master logged is the master's
                self._pid = os.getpid()
                self.records.clear()
            self.records.append(line)
            shared = self.shared_dir()
            if shared:
                self._write(shared, list(self.records))

    def _write(self, directory: str, records: list[dict]) -> None:
        path = os.path.join(directory, f"{self.FILE_PREFIX}{self._pid}.json")
        try:
            with open(path + ".tmp", "w") as out:
                json.dump(records, out, default=str)
            os.replace(path + ".tmp", path)
        except OSError:  # the directory is gone: this process's own list still answers
            pass

    def latest(self) -> list[dict]:
        with self._guard:
            records = list(self.records) if self._pid == os.getpid() else []
        shared = self.shared_dir()
        if shared:
            mine = f"{self.FILE_PREFIX}{os.getpid()}.json"
            try:
                names = [n for n in os.listdir(shared) if n.startswith(self.FILE_PREFIX) and n.endswith(".json")]
            except OSError:
                names = []
            for name in names:
                if name == mine:
                    continue
                try:
                    with open(os.path.join(shared, name)) as source:
                        records.extend(json.load(source))
                except (OSError, ValueError):  # being replaced, or gone
                    continue
            records.sort(key=lambda line: str(line.get("time", "")))
        return records[-self.capacity:]


recent_errors = RecentErrors()


# -- set-up ----------------------------------------------------------------------------

QUIET_LOGGERS = {
    "amqp": "WARNING",
    "kombu": "WARNING",
    "alembic.runtime.plugins": "WARNING",
    "nameko.web.server": "WARNING",  # probe access lines
    "waitress.queue": "ERROR",
    "urllib3": "WARNING",
    # at DEBUG these write secrets: RPC replies (access and refresh tokens), Stripe's request
    # bodies (card tokens), SendGrid's request headers (its API key); LOG_LEVEL=DEBUG leaves them at INFO
    "nameko.rpc": "INFO",
    "stripe": "INFO",
    "python_http_client": "INFO",
}


def dict_config(component: str, level: str = "INFO") -> dict:
    """The ``logging.config.dictConfig`` of a component (nameko's ``LOGGING`` setting)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "services.common.logs.ContextFilter", "component": component},
            "expected": {"()": "services.common.logs.ExpectedErrors"},
        },
        "formatters": {"json": {"()": "services.common.logs.JsonFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout",
                        "filters": ["expected", "context"]},
            "recent": {"()": "services.common.logs._recent_errors", "filters": ["expected", "context"]},
        },
        "root": {"level": level, "handlers": ["console", "recent"]},
        "loggers": {name: {"level": lvl} for name, lvl in QUIET_LOGGERS.items()},
    }


def _recent_errors():
    return recent_errors


def setup(component: str, level: str = "INFO") -> None:
    """Configure this process's logging: JSON lines on stdout, for ``component``, at ``level`` (``LOG_LEVEL``)."""
    logging.config.dictConfig(dict_config(component, level))
    sys.excepthook = _log_uncaught


def _log_uncaught(kind, value, tb):
    logging.getLogger("ticketing").critical("uncaught exception", exc_info=(kind, value, tb))
