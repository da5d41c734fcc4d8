"""Browser tests: Debian's Chromium driven by the Python `playwright` package.

`live_app_url` starts the whole app as the README does (`ticketing up`) on a
free port, with its own RabbitMQ vhost, a temporary VAR_DIR (SQLite) and mail
outbox, and a 60 s payment window. With BROWSER_APP=fake it serves the
frontend in front of the unit tests' fake gateway instead (quick work on the
pages without RabbitMQ; not what CI runs).

Screenshots of every step go to artifacts/screenshots/<test>-<viewport>/, the
app's log to artifacts/browser/.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 800},
}
START_TIMEOUT = 120
# `ticketing up` gives each service a health port at PORT + 1000 + n.
HEALTH_PORT_OFFSETS = range(1000, 1010)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_app_port() -> int:
    """A free PORT whose service health ports (PORT+1000...) are free too."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        if _port_free(port) and all(_port_free(port + offset) for offset in HEALTH_PORT_OFFSETS):
            return port
    raise RuntimeError("no free port range for ticketing up")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _ticketing_command() -> list[str]:
    script = Path(sys.executable).parent / "ticketing"
    return [str(script), "up"] if script.exists() else [sys.executable, "-m", "ticketing.cli", "up"]


def _wait_until_ready(process, url, log_path, ready_line):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log_path.read_text(errors='replace')[-5000:]}")
        log = log_path.read_text(errors="replace")
        if (ready_line is None or ready_line in log) and _answers(f"{url}/api/healthz") and _answers(f"{url}/"):
            return
        time.sleep(0.25)
    raise RuntimeError(f"the app was not ready in {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')[-5000:]}")


@pytest.fixture(scope="session")
def live_app_url():
    port = free_app_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = ARTIFACTS / "browser"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "app.log"
    workdir = Path(tempfile.mkdtemp(prefix="ticketing-browser-"))

    if os.environ.get("BROWSER_APP") == "fake":
        command = [sys.executable, "-m", "tests.unit.frontend.frontend_fake_gateway", "--port", str(port),
                   "--expiration-window", "60"]
        env, vhost, ready_line = {**os.environ}, None, None
    else:
        vhost = f"ticketing-browser-{uuid.uuid4().hex[:10]}"
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env = {
            key: value
            for key, value in os.environ.items()
            # our own databases, the sandbox card processor, emails to the outbox, test-mode cards
            if not key.endswith("_DATABASE_URL")
            and key not in ("STRIPE_KEY", "STRIPE_PUBLISHABLE_KEY", "SENDGRID_API_KEY", "TICKETING_ENV")
        }
        env.update(
            PORT=str(port),
            GATEWAY_URL=url,
            EXPIRATION_WINDOW_SECONDS="60",
            VAR_DIR=str(workdir / "var"),
            MAIL_OUTBOX_DIR=str(workdir / "mail"),
            AMQP_URI=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            JWT_KEY="browser-tests-" + uuid.uuid4().hex,
            SECRET_KEY="browser-tests-" + uuid.uuid4().hex,
            PYTHONUNBUFFERED="1",
        )
        command = _ticketing_command()
        ready_line = "ready:"

    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_until_ready(process, url, log_path, ready_line)
        yield url
    finally:
        _stop(process)
        if vhost:
            try:
                rabbitmqctl("delete_vhost", vhost)
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        _stop_playwright(playwright)


def _stop_playwright(playwright) -> None:
    try:
        import eventlet
        from eventlet import patcher
    except ImportError:
        patched = False
    else:
        patched = patcher.is_monkey_patched("thread")
    if not patched:
        playwright.stop()
        return
    # The suite runs eventlet-monkey-patched (tests/conftest.py). Then the Playwright
    # driver does exit, but the sync API's stop() never returns: bound the wait.
    with eventlet.Timeout(2, False):
        playwright.stop()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request):
    return request.param


@pytest.fixture
def open_browser(chromium, live_app_url, viewport):
    """`open_browser()` -> a new page in its own browser context (its own cookies: one person)."""
    contexts = []

    def open_page():
        context = chromium.new_context(
            base_url=live_app_url,
            viewport=VIEWPORTS[viewport],
            is_mobile=viewport == "phone",
            has_touch=viewport == "phone",
            locale="en-US",
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(request, viewport):
    """`screenshot(page, "step-name")` saves a numbered full-page screenshot of the step."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.removeprefix("test_").lower()).strip("-")
    directory = SCREENSHOTS / f"{name}-{viewport}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    steps = []

    def take(page, step: str):
        steps.append(step)
        page.screenshot(path=str(directory / f"{len(steps):02d}-{step}.png"), full_page=True)

    return take
