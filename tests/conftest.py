"""Fixtures every level of the suite shares.

Isolation on a shared broker and database server (services with the same name on one vhost answer each other's messages): every test
that talks to RabbitMQ gets its own vhost, every PostgreSQL test its own
database, and all of them are removed afterwards.
"""
import eventlet

eventlet.monkey_patch()  # first thing: nameko's pytest plugin no longer does it

import os  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import quote  # noqa: E402

import pytest  # noqa: E402

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
# Cheap password hashing keeps the suite fast; production uses the defaults.
os.environ.setdefault("ARGON2_MEMORY_KIB", "1024")
os.environ.setdefault("ARGON2_TIME_COST", "1")
os.environ.setdefault("ARGON2_PARALLELISM", "1")

# Every process refuses to start without proper keys: the suite makes a fresh pair per run.
from services.common.keys import new_key_pair  # noqa: E402
from services.common.net import free_port  # noqa: E402

if not os.environ.get("JWT_PRIVATE_KEY"):
    os.environ["JWT_PRIVATE_KEY"], os.environ["JWT_PUBLIC_KEY"] = new_key_pair()
os.environ.setdefault("SECRET_KEY", "test-frontend-secret-" + uuid.uuid4().hex)

# Rules tests hash passwords without an auth service: the process's hasher gets the cheap cost too.
from services.auth import passwords  # noqa: E402
from services.auth.settings import AuthSettings  # noqa: E402

passwords.configure(AuthSettings.load())

from tests.support import live, rabbit  # noqa: E402
from tests.support.postgres import PostgresAdmin  # noqa: E402

RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def rabbit_admin():
    return rabbit.RabbitAdmin()


@pytest.fixture
def vhost(rabbit_admin):
    """A fresh RabbitMQ vhost for one test; yields its AMQP URI."""
    name = f"ticketing-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    rabbit_admin.create_vhost(name)
    yield f"amqp://guest:guest@127.0.0.1:5672/{quote(name, safe='')}"
    rabbit_admin.delete_vhost(name)


@pytest.fixture
def rabbit_config(vhost):
    """Overrides nameko's fixture (which needs a management URI option) with our vhost."""
    return {"AMQP_URI": vhost}


@pytest.fixture(scope="session")
def postgres_admin():
    admin = PostgresAdmin(prefix=f"ticketing_test_{RUN_ID}")
    yield admin
    admin.drop_all()


@pytest.fixture
def postgres_url(postgres_admin):
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_admin.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each test that uses this runs on both the embedded default and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def service_config(vhost, tmp_path):
    """Builds the nameko config of one service under test (SQLite unless a URL is given)."""

    def build(service: str, database_url: str | None = None) -> dict:
        return {
            "AMQP_URI": vhost,
            "serializer": "json",
            "WEB_SERVER_ADDRESS": "127.0.0.1:0",
            "max_workers": 10,
            "DB_URIS": {f"{service}:Base": database_url or f"sqlite:///{tmp_path / (service + '.db')}"},
        }

    return build


@pytest.fixture(scope="session")
def app_factory(rabbit_admin, postgres_admin, tmp_path_factory):
    """Starts ``ticketing up`` as the README does, on PostgreSQL and a fresh vhost.

    ``app_factory(EXPIRATION_WINDOW_SECONDS="3")`` returns a running app (``.url``),
    one per distinct set of environment overrides, shared by the session.
    """
    apps: dict = {}

    def start(**overrides) -> live.LiveApp:
        key = tuple(sorted(overrides.items()))
        if key not in apps:
            apps[key] = live.LiveApp.start(rabbit_admin, postgres_admin, tmp_path_factory.mktemp("app"),
                                           port=free_port(), run_id=RUN_ID, env=overrides)
        return apps[key]

    yield start
    for app in apps.values():
        app.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.app_log_offsets = {id(app): app.log_size() for app in live.RUNNING}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the warnings and errors every running app logged while it ran
    (in CI the apps' logs are gone with the run)."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    offsets = getattr(item, "app_log_offsets", {})
    for app in live.RUNNING:
        lines = app.warnings_since(offsets.get(id(app), 0))
        if lines:
            report.sections.append((f"warnings of the app at {app.url} during the test", "\n".join(lines)))
