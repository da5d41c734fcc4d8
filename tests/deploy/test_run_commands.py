"""The container commands, proven without Docker: `ticketing migrate` and
`ticketing run <component>` (exactly what the image's ENTRYPOINT + command
run) start against the local RabbitMQ and PostgreSQL, answer their health
endpoints, and stop on SIGTERM as a container runtime asks them to.

Each run gets its own RabbitMQ vhost and its own databases, removed after.
Uses the RabbitMQ management API and PostgreSQL (POSTGRES_ADMIN_URL) like the rest of the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from services.common.net import free_port
from tests.support.postgres import PostgresAdmin

from .support import AUTH_BASE_MIB, DATABASE_SERVICES, DEPLOYED, HEALTH_PATHS, ticketing_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STARTUP_SECONDS = 20
STOP_SECONDS = 15
SETTLE_SECONDS = 1.5



def _components() -> list[str]:
    try:
        from ticketing.cli import COMPONENTS
    except ImportError:  # the CLI is not there yet: test what the deployment runs
        return list(DEPLOYED)
    return list(COMPONENTS)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def vhost(rabbit_admin):
    name = f"ticketing-deploy-{uuid.uuid4().hex[:10]}"
    rabbit_admin.create_vhost(name)
    yield name
    rabbit_admin.delete_vhost(name)


@pytest.fixture(scope="module")
def databases():
    """service -> SQLAlchemy URL of a fresh database."""
    admin = PostgresAdmin(prefix=f"deploy_{uuid.uuid4().hex[:10]}")
    try:
        yield {svc: admin.create_database(svc) for svc in DATABASE_SERVICES}
    finally:
        admin.drop_all()


@pytest.fixture(scope="module")
def base_env(vhost, databases, tmp_path_factory):
    """The environment a container gets from compose/the chart, pointed at this run's vhost and databases."""
    scratch = tmp_path_factory.mktemp("deploy-run")
    env = {
        k: v for k, v in os.environ.items()
        if not k.endswith("_DATABASE_URL")
        and k not in {"AMQP_URI", "PORT", "HEALTH_PORT", "HOST", "STRIPE_KEY", "SENDGRID_API_KEY", "GATEWAY_URL"}
    }
    env.update(
        AMQP_URI=f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost, safe='')}",
        TICKETING_ENV="development",
        PSYCOPG_WAIT_FUNC="wait_select",
        HOST="127.0.0.1",
        HEALTH_HOST="127.0.0.1",
        VAR_DIR=str(scratch / "var"),
        MAIL_OUTBOX_DIR=str(scratch / "mail"),
        PUBLIC_URL="http://localhost:8080",
        EXPIRATION_WINDOW_SECONDS="900",
        PYTHONUNBUFFERED="1",
    )
    for svc, url in databases.items():
        env[f"{svc.upper()}_DATABASE_URL"] = url
    return env


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def test_migrate_applies_every_migration_and_is_repeatable(base_env, tmp_path):
    """The compose `migrate` service and the chart's hook Job run this; the
    hook runs before every upgrade, so a second run must be a no-op."""
    for attempt in (1, 2):
        result = subprocess.run([*ticketing_command(), "migrate"], env=base_env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"ticketing migrate (run {attempt}) failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("component", _components())
def test_run_component_answers_its_health_endpoints_and_stops_on_sigterm(component, base_env, tmp_path):
    assert component in HEALTH_PATHS, f"no health endpoint known for component {component!r}"
    live, ready = HEALTH_PATHS[component]
    port, health_port = free_port(), free_port()
    env = dict(base_env, PORT=str(port), HEALTH_PORT=str(health_port), GATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    listen = port if component in ("gateway", "frontend", "web") else health_port
    log = tmp_path / f"{component}.log"

    with log.open("w") as out:
        process = subprocess.Popen(
            [*ticketing_command(), "run", component],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        statuses = {}
        for path in dict.fromkeys((live, ready)):
            url = f"http://127.0.0.1:{listen}{path}"
            while True:
                statuses[path] = http_status(url)
                if statuses[path] == 200:
                    break
                assert process.poll() is None, f"`ticketing run {component}` exited with {process.returncode}:\n{log_tail(log)}"
                assert time.monotonic() < deadline, (
                    f"`ticketing run {component}`: {url} answered {statuses[path]} after {STARTUP_SECONDS}s:\n{log_tail(log)}"
                )
                time.sleep(0.2)

        # What `docker stop` / a pod deletion does: SIGTERM, then a grace period.
        # The pause: /readyz can answer before nameko's queue consumer is
        # consuming, and nameko 2.14 cannot stop in that window (its
        # QueueConsumer.unregister_provider sends one event twice and hangs).
        time.sleep(SETTLE_SECONDS)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`ticketing run {component}` ignored SIGTERM for {STOP_SECONDS}s:\n{log_tail(log)}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


#: the key each component needs, and what it must refuse to start with, in development too
WEAK_KEYS = [("auth", "JWT_PRIVATE_KEY", ""), ("auth", "JWT_PRIVATE_KEY", "change-me-jwt-key"),
             ("gateway", "JWT_PUBLIC_KEY", ""), ("gateway", "JWT_PUBLIC_KEY", "change-me-jwt-key"),
             ("frontend", "SECRET_KEY", ""), ("frontend", "SECRET_KEY", "change-me-secret-key"),
             ("frontend", "SECRET_KEY", "9f3a0c5e7b1d24684f1c9a0e7b3d5c1")]  # 31 random characters


@pytest.mark.parametrize("component,variable,value", WEAK_KEYS,
                         ids=[f"{c}-{v}-{'missing' if not x else x[:9]}" for c, v, x in WEAK_KEYS])
def test_a_component_refuses_to_start_with_a_missing_placeholder_or_short_key(component, variable, value,
                                                                               base_env, tmp_path):
    env = {k: v for k, v in base_env.items() if k not in (variable, f"{variable}_FILE")}
    env.update({variable: value, "TICKETING_ENV": "development", "PORT": str(free_port()),
                "HEALTH_PORT": str(free_port()), "GATEWAY_URL": f"http://127.0.0.1:{free_port()}"})
    process = subprocess.Popen([*ticketing_command(), "run", component], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=STARTUP_SECONDS)
    except Exception:  # still running: TimeoutExpired (eventlet's own class once it patched subprocess)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        pytest.fail(f"`ticketing run {component}` started with {variable}={value!r}")
    assert process.returncode != 0 and variable in output, output[-2000:]


def test_auth_s_memory_stays_bounded_however_many_sign_ups_arrive_at_once(base_env, tmp_path):
    """Argon2 at its production cost (46 MiB a hash) and ten sign-ups at once: one hash runs at a time
    (ARGON2_MAX_CONCURRENT=1), so auth's peak stays near ~95 MiB + 46 MiB, inside the chart's limit,
    where ten hashes at once would take 460 MiB more."""
    import eventlet
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.common.errors import ServiceUnavailable

    env = dict(base_env, HEALTH_PORT=str(free_port()), ARGON2_MEMORY_KIB="47104", ARGON2_TIME_COST="1",
               ARGON2_PARALLELISM="1", ARGON2_MAX_CONCURRENT="1", ARGON2_QUEUE_SECONDS="60")
    log = tmp_path / "auth.log"
    with log.open("w") as out:
        process = subprocess.Popen([*ticketing_command(), "run", "auth"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        ready = f"http://127.0.0.1:{env['HEALTH_PORT']}/readyz"
        deadline = time.monotonic() + STARTUP_SECONDS
        while http_status(ready) != 200:
            assert process.poll() is None and time.monotonic() < deadline, log_tail(log)
            time.sleep(0.2)
        run = uuid.uuid4().hex[:8]

        def sign_up(n):
            with ClusterRpcProxy({"AMQP_URI": env["AMQP_URI"], "serializer": "json"}, timeout=120) as rpc:
                try:
                    return rpc.auth.signup(f"memory-{run}-{n}@example.com", "long-enough-password")["user"]["id"]
                except ServiceUnavailable:
                    return None

        signed_up = list(eventlet.GreenPool(10).imap(sign_up, range(10)))
        assert all(signed_up), signed_up
        peak_kib = int(next(line.split()[1] for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                            if line.startswith("VmHWM:")))
        assert peak_kib / 1024 < AUTH_BASE_MIB + 2 * 46, f"auth peaked at {peak_kib / 1024:.0f} MiB"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
