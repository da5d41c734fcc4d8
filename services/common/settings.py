"""Typed settings: one frozen dataclass per component, read and checked in one place.

Every component has one settings class (``services.<service>.settings``,
``gateway.settings``, ``frontend.settings``, ``ticketing.web.WebSettings``), built
on the classes here. A field *is* a setting: its name upper-cased is the variable
of the README's configuration table (``amqp_uri`` -> ``AMQP_URI``), and it carries
its default and one line saying what it is for (``setting(default, "...")``).

:meth:`CommonSettings.load` is the one place a value is read: from the nameko
config first (tests pass settings that way), then the environment; an empty
value counts as unset and gives the default. A secret field also reads the file
named by ``<NAME>_FILE`` (compose and Kubernetes secrets). Each value is parsed to
its field's type and checked, so a bad value stops the component when it starts
with a :class:`~services.common.config.ConfigurationError` naming the setting
(``ORDERS_SWEEP_INTERVAL must be a number, got 'soon'``).

Nothing reads the environment at import time. A nameko service gets its settings
from the :class:`Settings` dependency provider (``settings = Settings(OrdersSettings)``),
and the extensions of its container ask :func:`settings_of`; the gateway and the
frontend load theirs once in ``create_app``.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from .config import ConfigurationError, secret

CLASSIC, QUORUM = "classic", "quorum"
AT_MOST_ONCE, AT_LEAST_ONCE = "at-most-once", "at-least-once"


def setting(default, doc: str, *, check: Callable[[Any], str | None] | None = None,
            parse: Callable[[Any], Any] | None = None, secret: bool = False):
    """A settings field: ``default``, what it is for (``doc``), an optional ``check`` (returns what is
    wrong with a value, or None), an optional ``parse`` (raw text -> value) and whether it is a
    ``secret`` (then ``<NAME>_FILE`` may name a file holding it)."""
    return field(default=default, metadata={"doc": doc, "check": check, "parse": parse, "secret": secret})


def one_of(*allowed: str) -> Callable[[Any], str | None]:
    def check(value):
        return None if value in allowed else f"must be {' or '.join(allowed)}, got {value!r}"

    return check


def positive(value) -> str | None:
    return None if value > 0 else f"must be > 0, got {value!r}"


def not_negative(value) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value!r}"


def at_least_one(value) -> str | None:
    return None if value >= 1 else f"must be at least 1, got {value!r}"


def lowered(raw) -> str:
    return str(raw).strip().lower()


def _parse(name: str, kind, raw):
    if kind is bool:
        text = str(raw).strip().lower()
        if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
        return text in ("1", "true", "yes", "on")
    if kind is int:
        try:
            return int(float(raw))
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    return str(raw)


def _value_type(hint):
    """``int | None`` -> int; ``str`` -> str."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def setting_name(f: dataclasses.Field) -> str:
    return f.name.upper()


@dataclass(frozen=True)
class CommonSettings:
    """What every process reads: the broker, the environment's kind, logging, tokens."""

    amqp_uri: str = setting(
        "amqp://guest:guest@localhost:5672/",
        "the broker; the nodes of one cluster separated by `;` for failover (kombu connects to the first "
        "that answers and moves to the next live one when it goes away)")
    queue_type: str = setting(CLASSIC, "`classic` or `quorum`: the type of every durable queue",
                              parse=lowered, check=one_of(CLASSIC, QUORUM))
    quorum_dead_lettering: str = setting(AT_MOST_ONCE, "how quorum holding queues dead-letter",
                                         parse=lowered, check=one_of(AT_MOST_ONCE, AT_LEAST_ONCE))
    ticketing_env: str = setting("development", "`production` makes cookies `Secure`")
    log_level: str = setting("INFO", "level of the JSON log lines")
    var_dir: str = setting("./var", "where the SQLite files (and, by default, emails) live")
    health_host: str = setting("0.0.0.0", "the address of the health and metrics side ports")
    port: int = setting(8080, "where the web process listens (the default of PUBLIC_URL and GATEWAY_URL)")
    public_url: str | None = setting(None, "the site's address, for links in emails (default: http://localhost:$PORT)")
    rabbitmq_management_url: str | None = setting(
        None, "the broker's management API, for queue depths (default: http://<AMQP host>:15672)")
    access_token_ttl: int = setting(15 * 60, "access token lifetime in seconds", check=positive)
    refresh_token_ttl: int = setting(7 * 24 * 3600, "refresh token lifetime in seconds", check=positive)
    jwt_leeway_seconds: int = setting(30, "clock skew allowed between auth and the gateway", check=not_negative)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            if check is not None and value is not None:
                problem = check(value)
                if problem:
                    raise ConfigurationError(f"{setting_name(f)} {problem}")
        if self.public_url is None:
            self._derive("public_url", f"http://localhost:{self.port}")
        self._derive("public_url", self.public_url.rstrip("/"))

    def _derive(self, name: str, value) -> None:
        """Fill in a default computed from other settings (the dataclass is frozen)."""
        object.__setattr__(self, name, value)

    @property
    def is_production(self) -> bool:
        return self.ticketing_env == "production"

    def nameko_config(self) -> dict:
        """The nameko config of this process's broker clients (a service's container adds its own)."""
        return {"AMQP_URI": self.amqp_uri, "QUEUE_TYPE": self.queue_type,
                "QUORUM_DEAD_LETTERING": self.quorum_dead_lettering, "serializer": "json"}

    @classmethod
    def names(cls) -> dict[str, str]:
        """Every setting of this class, by its variable's name, with what it is for."""
        return {setting_name(f): f.metadata.get("doc", "") for f in dataclasses.fields(cls)}

    @classmethod
    def load(cls, nameko_config: Mapping | None = None, environ: Mapping | None = None):
        """The settings from ``nameko_config`` first, then ``environ`` (default: this process's
        environment, read now), then the defaults; :class:`ConfigurationError` names a bad one."""
        config = nameko_config or {}
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            name = setting_name(f)
            raw = config.get(name)
            if raw in (None, ""):
                raw = environ.get(name)
            if raw in (None, "") and f.metadata.get("secret"):
                raw = secret(name, environ)
            if raw in (None, ""):
                continue
            parse = f.metadata.get("parse")
            values[f.name] = parse(raw) if parse else _parse(name, _value_type(hints[f.name]), raw)
        return cls(**values)


@dataclass(frozen=True)
class ServiceSettings(CommonSettings):
    """What every nameko service reads besides the common settings."""

    #: the service these settings are for (its database variable is ``<SERVICE>_DATABASE_URL``)
    service: ClassVar[str | None] = None

    health_port: int = setting(8000, "each service's /healthz, /readyz, /metrics and /errors")
    max_workers: int = setting(10, "nameko workers per service process", check=at_least_one)
    internal_rpc_timeout: float = setting(5.0, "seconds a service waits for another (at most its caller's deadline)",
                                          check=positive)
    handler_retry_for_seconds: float = setting(6 * 3600.0, "how long a failing event is retried before it is parked",
                                               check=not_negative)
    handler_retry_max_delay_seconds: float = setting(60.0, "the longest pause between two tries of a failing event",
                                                     check=not_negative)
    outbox_relay_interval: float = setting(2.0, "how often the outbox relay looks for unpublished events",
                                           check=positive)
    outbox_relay_grace: float = setting(1.0, "an outbox row younger than this is still being published by its request",
                                        check=not_negative)
    ticketing_crash_after_commit: str | None = setting(
        None, "test hook: exit right after committing an event of this name, before publishing it")
    db_pool_size: int | None = setting(None, "database connections per process (PostgreSQL; default: workers + 5)",
                                       check=at_least_one)
    db_max_overflow: int = setting(10, "connections beyond the pool when it is exhausted (PostgreSQL)",
                                   check=not_negative)

    def database_url(self) -> str | None:
        """This service's database: its ``<SERVICE>_DATABASE_URL`` field, or a SQLite file under VAR_DIR
        (the directory is made); None for a service without a database."""
        if self.service is None or not hasattr(self, f"{self.service}_database_url"):
            return None
        url = getattr(self, f"{self.service}_database_url")
        if url:
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                # psycopg 3 is our driver; accept the plain scheme operators paste.
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        directory = Path(self.var_dir).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{directory / (self.service + '.db')}"

    def nameko_config(self) -> dict:
        """The nameko config of this service's container."""
        from . import logs

        config: dict = {
            **super().nameko_config(),
            # Each service serves /healthz and /readyz for probes.
            "WEB_SERVER_ADDRESS": f"{self.health_host}:{self.health_port}",
            "max_workers": self.max_workers,
            "parent_calls_tracked": 10,
            # JSON lines with the correlation id (services.common.logs)
            "LOGGING": logs.dict_config(self.service or "client", self.log_level),
        }
        url = self.database_url()
        if url is not None:
            config["DB_URIS"] = {f"{self.service}:Base": url}
        return config


class Settings(DependencyProvider):
    """``settings = Settings(OrdersSettings)``: workers get the service's settings object, loaded
    from the container's nameko config and the environment when the container starts (a bad value
    stops it there). The container's other extensions read the same object (:func:`settings_of`)."""

    def __init__(self, settings_class: type[ServiceSettings] = ServiceSettings):
        self.settings_class = settings_class
        self._value = None

    @property
    def value(self) -> ServiceSettings:
        if self._value is None:
            self._value = self.settings_class.load(self.container.config)
        return self._value

    def setup(self):
        self.value  # noqa: B018  (loaded and checked now, not at the first request)

    def get_dependency(self, worker_ctx):
        return self.value


_without_provider: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def settings_of(container, settings_class: type[ServiceSettings] = ServiceSettings) -> ServiceSettings:
    """The settings of the service running in ``container``: its :class:`Settings` provider's (loaded
    once), or, for a service that declares none (a test's, a standalone client's), ``settings_class``
    loaded from the container's config and the environment (once per container)."""
    for dependency in getattr(container, "dependencies", ()):
        if isinstance(dependency, Settings):
            return dependency.value
    try:
        loaded = _without_provider.setdefault(container, {})
    except TypeError:  # not weakly referenceable: not cached
        loaded = {}
    if settings_class not in loaded:
        loaded[settings_class] = settings_class.load(container.config)
    return loaded[settings_class]


class ConfiguredTimer(Timer):
    """A nameko timer whose interval is a field of the service's settings:
    ``@configured_timer("orders_sweep_interval")`` runs every ``ORDERS_SWEEP_INTERVAL`` seconds."""

    def __init__(self, interval_setting: str, **kwargs):
        super().__init__(interval=None, **kwargs)
        self.interval_setting = interval_setting

    def setup(self):
        self.interval = getattr(settings_of(self.container), self.interval_setting)
        super().setup()


configured_timer = ConfiguredTimer.decorator
