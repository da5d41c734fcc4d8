"""The ``ticketing`` command: run one component, all of them, or the migrations.

    ticketing up                      every service + gateway + frontend on one origin (PORT, default 8080)
    ticketing run <component>         one component in the foreground (what the container runs)
    ticketing migrate [service ...]   apply schema migrations (default: every service with a database)
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

# eventlet announces its own deprecation on import; nameko 2 needs it (README, "Stack notes").
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

# psycopg 3 must wait through select() so it yields to eventlet; set before it is imported.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
WEB = ("gateway", "frontend", "web")
COMPONENTS = SERVICES + WEB


def available_services() -> list[str]:
    """The services whose code exists in this tree (later issues add the rest)."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "services")
    return [name for name in SERVICES if os.path.exists(os.path.join(root, name, "service.py"))]


def service_class(name: str):
    module = importlib.import_module(f"services.{name}.service")
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == name and value.__module__ == module.__name__:
            return value
    raise LookupError(f"services.{name}.service defines no nameko service called {name!r}")


def run_service(name: str) -> None:
    import eventlet

    eventlet.monkey_patch()
    import logging.config

    from nameko.cli.run import run

    from services.common.config import nameko_config

    config = nameko_config(name)
    logging.config.dictConfig(config["LOGGING"])
    supervise(name, lambda: run([service_class(name)], config))


#: pauses between restarts of a service whose container died (seconds)
RESTART_PAUSES = (1, 2, 5, 10)


def supervise(name: str, run_once, sleep=None) -> None:
    """Run the service; if its container dies of an error, start it again in this process.

    nameko 2 kills a whole container on some broker failures (and on any error it does not
    expect from an extension); a process that stays dead would need an outside supervisor to
    notice. A clean stop (SIGTERM, Ctrl-C) ends the loop. A container that ran for a minute
    before dying starts the pauses over."""
    import time

    sleep = sleep or time.sleep
    log = logging.getLogger(__name__)
    failures = 0
    while True:
        log.info("starting service %s", name)
        started = time.monotonic()
        try:
            run_once()
            return
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
    try:
        from frontend.app import create_app
    except ImportError:  # the frontend package is not there yet
        from flask import Flask

        app = Flask("frontend")
        app.add_url_rule("/", "home", lambda: "<h1>Ticketing</h1><p>The API is at <a href=/api/openapi.json>/api</a>.</p>")
        app.add_url_rule("/healthz", "healthz", lambda: "ok")
        return app
    return create_app()


def one_origin():
    """``/api/*`` to the gateway, everything else to the frontend, in one WSGI app.

    The frontend calls the gateway over HTTP and names the browser in X-Forwarded-For;
    the gateway trusts that one hop, so sign-in throttling counts per browser."""
    from gateway.app import create_app

    gateway, frontend = create_app({"PROXY_COUNT": 1}), frontend_app()

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = gateway if path == "/api" or path.startswith("/api/") else frontend
        return target(environ, start_response)

    return dispatch


def run_web(component: str) -> None:
    import waitress

    from services.common import config

    logging.basicConfig(level=config.env("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    host, port = config.env("HOST", "0.0.0.0"), config.env_int("PORT", 8000)
    app = web_app(component)
    logging.getLogger(__name__).info("serving %s on http://%s:%s", component, host, port)
    waitress.serve(app, host=host, port=port, threads=config.env_int("WEB_THREADS", 32),
                   connection_limit=1000, channel_timeout=60, ident="ticketing")


def migrate(names: list[str]) -> None:
    from services.common.config import SERVICES_WITH_DATABASE, database_url
    from services.common.migrations import upgrade

    for name in names or [n for n in available_services() if n in SERVICES_WITH_DATABASE]:
        if name not in SERVICES_WITH_DATABASE:
            raise SystemExit(f"{name} has no database")
        upgrade(name, database_url(name))
        print(f"migrated {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run every component on one origin (PORT, default 8080)")
    run = commands.add_parser("run", help="run one component in the foreground")
    run.add_argument("component", choices=COMPONENTS)
    mig = commands.add_parser("migrate", help="apply schema migrations")
    mig.add_argument("services", nargs="*")
    rev = commands.add_parser("revision", help="developers: autogenerate a migration from a service's models")
    rev.add_argument("service")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    if args.command == "up":
        from .supervisor import up

        sys.exit(up())
    if args.command == "run":
        if args.component in SERVICES:
            run_service(args.component)
        else:
            run_web(args.component)
    elif args.command == "migrate":
        migrate(args.services)
    elif args.command == "revision":
        import tempfile

        from services.common.migrations import revision

        with tempfile.TemporaryDirectory() as scratch:
            revision(args.service, f"sqlite:///{scratch}/scratch.db", args.message)


if __name__ == "__main__":
    main()
