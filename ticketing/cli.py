"""The ``ticketing`` command: run one component, all of them, or the migrations.

    ticketing up                      every service + gateway + frontend on one origin (PORT, default 8080)
    ticketing run <component>         one component in the foreground (what the container runs)
    ticketing migrate [service ...]   apply schema migrations (default: every service with a database)
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

# eventlet announces its own deprecation on import; nameko 2 needs it (README: Stack notes).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

# psycopg 3 must wait through select() so it yields to eventlet (STACK-NOTES); set before it is imported.
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
    logging.getLogger(__name__).info("starting service %s", name)
    run([service_class(name)], config)


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


def broker_users() -> None:
    """Apply services.common.broker_users: RABBITMQ_MANAGEMENT_URL, RABBITMQ_ADMIN_USER/PASSWORD,
    RABBITMQ_VHOST (default /), and for each component <COMPONENT>_AMQP_PASSWORD (user
    ``ticketing-<component>``, or <COMPONENT>_AMQP_USER)."""
    import requests

    from services.common import broker_users as rules
    from services.common.config import env

    http = requests.Session()
    http.auth = (env("RABBITMQ_ADMIN_USER", "guest"), env("RABBITMQ_ADMIN_PASSWORD", "guest"))
    url, vhost = env("RABBITMQ_MANAGEMENT_URL", "http://localhost:15672"), env("RABBITMQ_VHOST", "/")
    for component in rules.COMPONENTS:
        password = env(f"{component.upper()}_AMQP_PASSWORD")
        if not password:
            raise SystemExit(f"{component.upper()}_AMQP_PASSWORD is not set")
        user = env(f"{component.upper()}_AMQP_USER", f"ticketing-{component}")
        rules.apply(http, url, vhost, user, password, component)
        print(f"broker user {user}: {component}'s permissions on vhost {vhost}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run every component on one origin (PORT, default 8080)")
    run = commands.add_parser("run", help="run one component in the foreground")
    run.add_argument("component", choices=COMPONENTS)
    mig = commands.add_parser("migrate", help="apply schema migrations")
    mig.add_argument("services", nargs="*")
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

        sys.exit(up())
    if args.command == "run":
        if args.component in SERVICES:
            run_service(args.component)
        else:
            run_web(args.component)
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
