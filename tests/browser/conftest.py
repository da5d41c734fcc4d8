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
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from services.common.net import free_port
from tests.support.live import LiveApp
from tests.support.rabbit import RabbitAdmin

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
FAKE_START_TIMEOUT = 60


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def _fake_app(port: int, log_path: Path):
    """The frontend in front of the unit tests' fake gateway (BROWSER_APP=fake)."""
    command = [sys.executable, "-m", "tests.unit.frontend.frontend_fake_gateway", "--port", str(port),
               "--expiration-window", "60"]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + FAKE_START_TIMEOUT
        while not (_answers(f"http://127.0.0.1:{port}/api/healthz") and _answers(f"http://127.0.0.1:{port}/")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake app did not start:\n{log_path.read_text(errors='replace')[-5000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def live_app_url():
    log_dir = ARTIFACTS / "browser"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "app.log"
    if os.environ.get("BROWSER_APP") == "fake":
        with _fake_app(free_port(), log_path) as url:
            yield url
        return
    workdir = Path(tempfile.mkdtemp(prefix="ticketing-browser-"))
    # `ticketing up` as `make up` runs it: SQLite per service, the card sandbox, .eml files
    app = LiveApp.start(RabbitAdmin(), None, workdir, port=free_port(), run_id=uuid.uuid4().hex[:8],
                        env={"EXPIRATION_WINDOW_SECONDS": "60"}, log_path=log_path)
    try:
        yield app.url
    finally:
        app.stop()
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
