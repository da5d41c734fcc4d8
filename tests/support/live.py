"""The whole app as a subprocess (``ticketing up``), the way the README starts it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

DATABASE_SERVICES = ("auth", "tickets", "orders", "payments", "confirmation")
START_TIMEOUT = 90
OUTSIDE_SERVICES = ("STRIPE_KEY", "STRIPE_PUBLISHABLE_KEY", "SENDGRID_API_KEY", "TICKETING_ENV",
                    # `ticketing up` makes its own keys per run, as it does for a developer
                    "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY")
#: the apps running now, so that a failing test can show what they logged while it ran
RUNNING: list["LiveApp"] = []


class LiveApp:
    def __init__(self, process, url, log_path, env, vhost, rabbit_admin):
        self.process, self.url, self.log_path, self.env = process, url, log_path, env
        self.vhost, self.rabbit_admin = vhost, rabbit_admin

    @classmethod
    def start(cls, rabbit_admin, postgres_admin, workdir: Path, port: int, run_id: str, env: dict,
              log_path: Path | None = None, args: tuple = (),
              brokers: tuple = ("amqp://guest:guest@127.0.0.1:5672",),
              start_timeout: float = START_TIMEOUT) -> "LiveApp":
        """``postgres_admin`` None: the embedded default, a SQLite file per service (as ``make up``).

        ``args`` go to ``ticketing up`` (``("--replicas", "2")``); ``brokers`` are the nodes
        ``rabbit_admin`` manages (several: one AMQP_URI listing them all, for failover)."""
        vhost = f"ticketing-e2e-{run_id}-{uuid.uuid4().hex[:6]}"
        rabbit_admin.create_vhost(vhost)
        full_env = {
            key: value for key, value in os.environ.items()
            # the machine's own settings must not leak in: our databases, the sandbox processor, file emails
            if not key.endswith("_DATABASE_URL") and key not in OUTSIDE_SERVICES
        }
        full_env.update({
            "AMQP_URI": ";".join(f"{broker}/{quote(vhost, safe='')}" for broker in brokers),
            "PORT": str(port),
            "VAR_DIR": str(workdir / "var"),
            "MAIL_OUTBOX_DIR": str(workdir / "mail"),
            "PYTHONUNBUFFERED": "1",
            # short, so tests can step past it (two tabs refreshing together within it get one successor)
            "REFRESH_GRACE_SECONDS": "1",
            # the whole suite calls from one address: per-address limits are tested on their own
            "AUTH_MAX_FAILURES_PER_CLIENT": "10000",
            "AUTH_MAX_SIGNUPS_PER_CLIENT": "10000",
        })
        if postgres_admin is not None:
            label = uuid.uuid4().hex[:6]
            for service in DATABASE_SERVICES:
                full_env[f"{service.upper()}_DATABASE_URL"] = postgres_admin.create_database(f"{label}_{service}")
        full_env.update({k: str(v) for k, v in env.items()})
        log_path = log_path or workdir / "ticketing-up.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "ticketing.cli", "up", *args], env=full_env, cwd=Path(__file__).parents[2],
            stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        app = cls(process, f"http://127.0.0.1:{port}", log_path, full_env, vhost, rabbit_admin)
        RUNNING.append(app)
        try:
            app.wait_ready(start_timeout)
        except Exception:
            app.stop()
            raise
        return app

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def warnings_since(self, offset: int, limit: int = 60) -> list[str]:
        """The last ``limit`` WARNING/ERROR lines logged after byte ``offset`` (and what follows them:
        tracebacks are indented)."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        kept, keeping = [], False
        for line in lines:
            if " WARNING " in line or " ERROR " in line or " CRITICAL " in line:
                keeping = True
            elif " INFO " in line or " DEBUG " in line:
                keeping = False
            if keeping:
                kept.append(line)
        return kept[-limit:]

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ticketing up exited early:\n{self.log()[-5000:]}")
            if "ticketing | ready:" in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"ticketing up was not ready in {timeout}s:\n{self.log()[-5000:]}")

    def session(self) -> requests.Session:
        """An HTTP client with a cookie jar, like one browser."""
        return requests.Session()

    def health_url(self, name: str) -> str:
        """The readiness URL of one service (the supervisor logs them at start; stable across restarts)."""
        import re

        match = re.search(rf"\b{name} \(health (http://[^)]+)\)", self.log())
        if not match:
            raise LookupError(f"no health URL of {name} in the log")
        return match.group(1)

    def ready(self, name: str) -> bool:
        try:
            return requests.get(self.health_url(name), timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    def component_pids(self, name: str) -> list[int]:
        out = subprocess.run(["pgrep", "-f", f"ticketing.cli run {name}$"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        mine = []
        for pid in pids:
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if f"AMQP_URI={self.env['AMQP_URI']}".encode() in environ:
                mine.append(pid)
        return mine

    def kill_component(self, name: str, sig=signal.SIGKILL) -> None:
        """Kill one component's process; the supervisor starts it again."""
        for pid in self.component_pids(name):
            os.kill(pid, sig)

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.rabbit_admin.delete_vhost(self.vhost)
