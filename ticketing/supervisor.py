"""``ticketing up``: every component as a child process, one log stream, one origin.

Each service runs as ``replicas`` processes (``ticketing up --replicas 2``, or
per service ``--replicas orders=3``): replicas of a service share its RPC and
event queues, so RabbitMQ spreads the work between them. Each process gets a
free health port of its own (logged at start); the first replica is named
after its service, the others ``<service>.2``, ``<service>.3`` ... The web
process serves the gateway and the frontend on PORT. A component that dies is restarted (with a
growing pause), so a crash loses nothing: the broker keeps its messages and the
outboxes keep their events. Ctrl-C (or SIGTERM) stops everything in order.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from services.common.net import free_port

from . import logview, status
from .cli import SERVICES

STOP_TIMEOUT = 10


class Child:
    def __init__(self, name: str, env: dict, health_url: str, component: str | None = None):
        self.name, self.env, self.health_url = name, env, health_url
        self.component = component or name
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.started_at = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ticketing.cli", "run", self.component], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, bufsize=1, text=True,
        )
        self.started_at = time.monotonic()
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            show(self.name, line.rstrip("\n"))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False


_print_lock = threading.Lock()
#: ``ticketing up --json``: print the children's JSON lines as they are
JSON_OUTPUT = False


def show(name: str, line: str) -> None:
    """One line of a child's output, for people or (``--json``) machines."""
    lines = logview.as_json(name, line) if JSON_OUTPUT else logview.human(name, line)
    _write(lines)


def emit(name: str, line: str) -> None:
    """A line of the supervisor's own."""
    _write([logview.own(name, line)] if JSON_OUTPUT else [f"{name:>12} | {line}"])


def _write(lines: list[str]) -> None:
    with _print_lock:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()


#: secrets only some components may hold (the rest never see them)
PRIVATE_TO = {"JWT_PRIVATE_KEY": {"auth"}, "JWT_PRIVATE_KEY_FILE": {"auth"},
              "SECRET_KEY": {"web"}, "SECRET_KEY_FILE": {"web"},
              "STRIPE_KEY": {"payments"}, "SENDGRID_API_KEY": {"confirmation"}}


def _provide_keys(env: dict) -> None:
    """Without keys in the environment, make fresh ones for this run under VAR_DIR/keys."""
    from services.common.keys import write_keys

    wanted = ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY")
    if all(env.get(name) or env.get(f"{name}_FILE") for name in wanted):
        return
    directory = Path(env.get("VAR_DIR") or "./var").resolve() / "keys"
    written = write_keys(directory)
    for name in wanted:
        if not (env.get(name) or env.get(f"{name}_FILE")):
            env[f"{name}_FILE"] = written[f"{name}_FILE"]
    emit("ticketing", f"no JWT_PRIVATE_KEY/JWT_PUBLIC_KEY/SECRET_KEY set: generated fresh ones for this run "
                      f"in {directory} (sign-ins do not survive a restart; set them to keep sessions)")


def _own_secrets(env: dict, component: str) -> dict:
    return {k: v for k, v in env.items() if component in PRIVATE_TO.get(k, {component})}


def plan(services: list[str], replicas: dict[str, int], base_env: dict, port: int) -> list[Child]:
    """The processes to run: ``replicas[service]`` (default 1) of each service, then the web process."""
    children = []
    for service in services:
        for n in range(1, replicas.get(service, 1) + 1):
            health_port = free_port()
            env = {**_own_secrets(base_env, service), "HEALTH_PORT": str(health_port), "HEALTH_HOST": "127.0.0.1"}
            name = service if n == 1 else f"{service}.{n}"
            children.append(Child(name, env, f"http://127.0.0.1:{health_port}/readyz", component=service))
    web_env = {**_own_secrets(base_env, "web"), "PORT": str(port), "HOST": base_env.get("HOST", "127.0.0.1"),
               "METRICS_PORT": str(free_port()), "HEALTH_HOST": "127.0.0.1"}
    children.append(Child("web", web_env, f"http://127.0.0.1:{port}/api/readyz"))
    return children


def endpoints(children: list[Child]) -> dict:
    """Where `ticketing status` finds each process's readiness, metrics and last errors."""
    found = {}
    for child in children:
        side_port = child.env["METRICS_PORT"] if child.component == "web" else child.env["HEALTH_PORT"]
        found[child.name] = status.endpoints(f"http://127.0.0.1:{side_port}", child.health_url)
    return found


def up(replicas: dict[str, int] | None = None, json_output: bool = False) -> int:
    global JSON_OUTPUT
    JSON_OUTPUT = json_output
    os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
    port = int(os.environ.get("PORT") or 8080)
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base_env.setdefault("GATEWAY_URL", f"http://127.0.0.1:{port}")
    base_env.setdefault("PUBLIC_URL", f"http://localhost:{port}")
    _provide_keys(base_env)

    children = plan(list(SERVICES), replicas or {}, base_env, port)
    state = status.write_state(endpoints(children), base_env)

    stopping = threading.Event()

    def request_stop(signum, _frame):
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    for child in children:
        child.start()
    emit("ticketing", "starting " + ", ".join(f"{c.name} (health {c.health_url})" for c in children))

    announced = False
    while not stopping.wait(0.5):
        for child in children:
            code = child.process.poll()
            if code is None:
                continue
            pause = min(2 ** child.restarts, 30) if time.monotonic() - child.started_at < 30 else 1
            emit("ticketing", f"{child.name} exited with {code}; restarting in {pause}s")
            if stopping.wait(pause):
                break
            child.restarts += 1
            child.start()
        if not announced and all(child.healthy() for child in children):
            announced = True
            emit("ticketing", f"ready: http://localhost:{port} (API at /api, Ctrl-C stops)")

    emit("ticketing", "stopping")
    for child in reversed(children):
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            emit("ticketing", f"{child.name} did not stop in time; killing it")
            child.process.kill()
    status.remove_state(state)
    emit("ticketing", "stopped")
    return 0
