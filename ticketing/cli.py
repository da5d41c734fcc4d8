"""The ``ticketing`` command: run one component, all of them, or the migrations.

    ticketing up                      every service + gateway + frontend on one origin (PORT, default 8080)
    ticketing up --replicas 2 [--replicas orders=3]   N processes of every service (or of one)
    ticketing run <component>         one component in the foreground (what the container runs)
    ticketing migrate [service ...]   apply schema migrations (default: every service with a database)
    ticketing status                  readiness, queue depths and last errors of what `ticketing up` runs
    ticketing shell                   nameko's shell on AMQP_URI: n.rpc.orders.find_orders(status="cancelled")
    ticketing keys DIR                write a fresh token key pair and frontend SECRET_KEY (owner-only files)
    ticketing broker-users            one RabbitMQ user per component, limited to its own queues and RPCs
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

# eventlet announces its own deprecation on import; nameko 2 needs it.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

# psycopg 3 must wait through select() so it yields to eventlet; set before it is imported.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
# eventlet's resolver imports dnspython (~30 MB per process); services.common.resolver replaces it.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")

SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
WEB = ("gateway", "frontend", "web")
COMPONENTS = SERVICES + WEB


def settings_class(name: str):
    """The settings class of service ``name`` (``services.<name>.settings``)."""
    from services.common.settings import ServiceSettings

    module = importlib.import_module(f"services.{name}.settings")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ServiceSettings) and getattr(value, "service", None) == name:
            return value
    raise LookupError(f"services.{name}.settings defines no settings of {name!r}")


def service_class(name: str):
    module = importlib.import_module(f"services.{name}.service")
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == name and value.__module__ == module.__name__:
            return value
    raise LookupError(f"services.{name}.service defines no nameko service called {name!r}")


def run_service(name: str) -> None:
    import eventlet

    eventlet.monkey_patch()
    from nameko.cli.run import run

    from services.common import logs, resolver
    from services.common.config import SCHEMA_MIGRATED

    resolver.install()
    settings = settings_class(name).load()  # a bad value stops the service here, naming the setting
    config = settings.nameko_config()
    logs.setup(name, settings.log_level)
    service = service_class(name)
    url = settings.database_url()  # None: a service without a database
    if url is not None and migrate_in_child(name, url):
        config[SCHEMA_MIGRATED] = True
    supervise(name, lambda: run([service], config))


def migrate_in_child(name: str, database_url: str | None = None) -> bool:
    """Apply ``name``'s migrations in a forked child process; True if they are applied.

    Alembic (and its templates, and the revisions) would stay in the service's memory
    for good, about 10 MB, for work done once at start; in a child that exits, it
    never loads in the service's own process. The fork comes after the service's modules
    are imported, so the child only adds Alembic, and before the service opens any
    connection or starts any (green) thread. False (the child failed: the database is
    not there yet, say) leaves the migrations to the service's Store, which runs them
    in-process and retries as it always has."""
    from eventlet import patcher

    original = patcher.original("os")  # a real fork and a blocking wait: nothing green runs yet
    sys.stdout.flush()
    sys.stderr.flush()
    pid = original.fork()
    if pid == 0:
        code = 1
        try:
            from sqlalchemy import create_engine

            from services.common.migrations import upgrade
            from services.common.store import configure_engine

            engine = create_engine(database_url or settings_class(name).load().database_url())
            configure_engine(engine)
            upgrade(name, engine)
            engine.dispose()
            code = 0
        except BaseException as exc:
            logging.getLogger(__name__).warning(
                "migrating %s in a child process failed (%s: %s); the service migrates itself",
                name, type(exc).__name__, exc)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            original._exit(code)
    _, status = original.waitpid(pid, 0)
    return original.waitstatus_to_exitcode(status) == 0


#: pauses between restarts of a service whose container died (seconds)
RESTART_PAUSES = (1, 2, 5, 10)


def supervise(name: str, run_once, sleep=None) -> None:
    """Run the service; if its container dies of an error, start it again in this process.

    nameko 2 kills a whole container on some broker failures (and on any error it does not
    expect from an extension); a process that stays dead would need an outside supervisor to
    notice. A clean stop (SIGTERM, Ctrl-C) ends the loop. A container that ran for a minute
    before dying starts the pauses over. A configuration error (a missing or placeholder key,
    say) does not heal by restarting: it stops the process, naming the setting."""
    import time

    from services.common.config import ConfigurationError

    sleep = sleep or time.sleep
    log = logging.getLogger(__name__)
    failures = 0
    while True:
        log.info("starting service %s", name)
        started = time.monotonic()
        try:
            run_once()
            return
        except ConfigurationError as exc:
            raise SystemExit(f"{name}: {exc}") from None
        except Exception as exc:
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            pause = RESTART_PAUSES[min(failures, len(RESTART_PAUSES)) - 1]
            log.error("service %s died (%s: %s); starting it again in %ss", name, type(exc).__name__, exc, pause)
            sleep(pause)


def web_app(component: str):
    if component == "gateway":
        from gateway.app import create_app

        return create_app()
    if component == "frontend":
        return frontend_app()
    return one_origin()


def frontend_app():
    from frontend.app import create_app

    return create_app()


def one_origin():
    """``/api/*`` to the gateway, everything else to the frontend, in one WSGI app.

    The frontend calls the gateway over HTTP and names the browser in X-Forwarded-For;
    the gateway trusts that one hop, so sign-in throttling counts per browser. A browser
    calling /api directly could send that header too, so it is trusted only on calls
    that carry this process's frontend token (a random value the frontend adds)."""
    import secrets

    from gateway.app import create_app

    token = secrets.token_urlsafe(24)
    gateway = create_app({"PROXY_COUNT": 1})
    frontend = frontend_app()
    frontend.config["GATEWAY_PROXY_TOKEN"] = token
    forwarded = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/api" or path.startswith("/api/"):
            if not secrets.compare_digest(environ.pop("HTTP_X_TICKETING_FRONTEND", ""), token):
                for name in forwarded:
                    environ.pop(name, None)
            return gateway(environ, start_response)
        return frontend(environ, start_response)

    dispatch.rpc = gateway.rpc  # the web server warms the gateway's RPC pool
    return dispatch


def run_web(component: str) -> None:
    """Serve the gateway, the frontend, or both on one origin (``web``) with gunicorn (see ticketing.web).

    gunicorn runs several worker processes, so metrics use prometheus-client's multiprocess
    mode: each worker writes its samples under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory
    per run unless set) and the side port, served by the master, adds them up."""
    import tempfile

    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix=f"ticketing-{component}-metrics-"))
    from services.common import logs

    from .web import WebSettings, serve

    settings = WebSettings.load()
    logs.setup(component, settings.log_level)
    # metrics and recent errors on a port of their own, never behind the public Ingress
    if settings.metrics_port:
        from services.common.side_port import serve_side_port

        serve_side_port(settings.health_host, settings.metrics_port)
    serve(component)


def migrate(names: list[str]) -> None:
    from services.common.config import SERVICES_WITH_DATABASE
    from services.common.migrations import upgrade

    for name in names or SERVICES_WITH_DATABASE:
        if name not in SERVICES_WITH_DATABASE:
            raise SystemExit(f"{name} has no database")
        upgrade(name, settings_class(name).load().database_url())
        print(f"migrated {name}")


def shell() -> None:
    """nameko's shell (``n.rpc.<service>.<method>(...)``) on this environment's broker: what
    ``nameko shell --config config.yaml`` does, without printing the broker's password."""
    import eventlet

    eventlet.monkey_patch()
    from urllib.parse import urlsplit

    from nameko.cli.shell import ShellRunner, make_nameko_helper

    from services.common.settings import CommonSettings

    amqp_uri = CommonSettings.load().amqp_uri
    uri = urlsplit(amqp_uri)
    shown = uri._replace(netloc=uri.netloc.rsplit("@", 1)[-1]).geturl()
    banner = (f"Ticketing operator shell on {shown}\n"
              "n.rpc.<service>.<method>(...), e.g. n.rpc.orders.find_orders(status='cancelled'); "
              "recipes: README, Operating it")
    ShellRunner(banner, {"n": make_nameko_helper({"AMQP_URI": amqp_uri, "serializer": "json"})}).start_shell(None)


def parse_replicas(values: list[str]) -> dict[str, int]:
    """``["2", "orders=3"]`` -> 2 of every service, 3 of orders (later values win)."""
    replicas: dict[str, int] = {}
    for value in values:
        service, _, count = value.rpartition("=")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--replicas wants N or SERVICE=N with N >= 1, got {value!r}")
        if not service:
            replicas.update({name: int(count) for name in SERVICES})
        elif service in SERVICES:
            replicas[service] = int(count)
        else:
            raise ValueError(f"--replicas: {service!r} is not one of {', '.join(SERVICES)}")
    return replicas


def broker_users() -> None:
    """Apply services.common.broker_users: RABBITMQ_MANAGEMENT_URL, RABBITMQ_ADMIN_USER/PASSWORD,
    RABBITMQ_VHOST (default /, created when missing), and for each component <COMPONENT>_AMQP_PASSWORD
    (user ``ticketing-<component>``, or <COMPONENT>_AMQP_USER). Waits up to RABBITMQ_WAIT_SECONDS
    (default 60) for a management API that does not answer yet (a broker still starting)."""
    import time
    from urllib.parse import quote

    import requests

    from services.common import broker_users as rules
    from services.common.config import env

    settings = rules.BrokerSetupSettings.load()
    http = requests.Session()
    http.auth = (settings.rabbitmq_admin_user, settings.rabbitmq_admin_password)
    url, vhost = settings.management_url, settings.rabbitmq_vhost
    passwords = {}
    for component in rules.COMPONENTS:
        passwords[component] = env(f"{component.upper()}_AMQP_PASSWORD")
        if not passwords[component]:
            raise SystemExit(f"{component.upper()}_AMQP_PASSWORD is not set")
    deadline = time.monotonic() + settings.rabbitmq_wait_seconds
    vhost_url = f"{url}/api/vhosts/{quote(vhost, safe='')}"
    while True:
        try:
            answer = http.get(vhost_url, timeout=10)
            if answer.status_code < 500:
                break
            problem = f"answers {answer.status_code}"
        except requests.ConnectionError as exc:
            problem = f"does not answer ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            raise SystemExit(f"the management API at {url} {problem}")
        print(f"waiting for the management API at {url}: it {problem}", flush=True)
        time.sleep(2)
    if answer.status_code == 401:
        raise SystemExit(f"the management API at {url} refused RABBITMQ_ADMIN_USER/PASSWORD")
    if answer.status_code == 404:
        http.put(vhost_url, timeout=10).raise_for_status()
        print(f"vhost {vhost} created")
    else:
        answer.raise_for_status()
    for component in rules.COMPONENTS:
        user = env(f"{component.upper()}_AMQP_USER", f"ticketing-{component}")
        rules.apply(http, url, vhost, user, passwords[component], component)
        print(f"broker user {user}: {component}'s permissions on vhost {vhost}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="run every component on one origin (PORT, default 8080)")
    up_cmd.add_argument("--json", action="store_true", help="print the log as JSON lines (for machines)")
    up_cmd.add_argument("--replicas", action="append", default=[], metavar="N|SERVICE=N",
                        help="processes per service: N for every service, SERVICE=N for one (repeatable)")
    run = commands.add_parser("run", help="run one component in the foreground")
    run.add_argument("component", choices=COMPONENTS)
    mig = commands.add_parser("migrate", help="apply schema migrations")
    mig.add_argument("services", nargs="*")
    stat = commands.add_parser("status", help="readiness, queue depths and last errors of every component")
    stat.add_argument("--component", action="append", metavar="NAME=URL",
                      help="a component's health (or metrics) base URL; default: what `ticketing up` runs")
    stat.add_argument("--json", action="store_true")
    commands.add_parser("shell", help="nameko's shell, connected to AMQP_URI (n.rpc.<service>.<method>)")
    keys = commands.add_parser("keys", help="write a fresh token key pair and frontend SECRET_KEY to a directory")
    keys.add_argument("directory")
    commands.add_parser("broker-users", help="create each component's RabbitMQ user with only its own permissions "
                                             "(management API; settings from the environment)")
    rev = commands.add_parser("revision", help="developers: autogenerate a migration from a service's models")
    rev.add_argument("service")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    if args.command == "up":
        from .supervisor import up

        try:
            replicas = parse_replicas(args.replicas)
        except ValueError as exc:
            parser.error(str(exc))
        sys.exit(up(replicas, json_output=args.json))
    if args.command == "run":
        if args.component in SERVICES:
            run_service(args.component)
        else:
            run_web(args.component)
    elif args.command == "status":
        from . import status

        sys.exit(status.main(args))
    elif args.command == "shell":
        shell()
    elif args.command == "migrate":
        migrate(args.services)
    elif args.command == "broker-users":
        broker_users()
    elif args.command == "keys":
        from pathlib import Path

        from services.common.keys import write_keys

        for variable, path in write_keys(Path(args.directory)).items():
            print(f"{variable}={path}")
    elif args.command == "revision":
        import tempfile

        from services.common.migrations import revision

        with tempfile.TemporaryDirectory() as scratch:
            revision(args.service, f"sqlite:///{scratch}/scratch.db", args.message)


if __name__ == "__main__":
    main()
