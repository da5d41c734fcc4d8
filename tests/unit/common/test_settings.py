"""Every component's typed settings: the README's table, the checks, and nothing read at import time."""
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from frontend.settings import FrontendSettings
from gateway.settings import GatewaySettings
from services.auth.settings import AuthSettings
from services.common.broker_users import BrokerSetupSettings
from services.common.config import ConfigurationError
from services.common.settings import CommonSettings, Settings, settings_of
from services.confirmation.settings import ConfirmationSettings
from services.expiration.settings import ExpirationSettings
from services.orders.settings import OrdersSettings
from services.payments.settings import PaymentsSettings
from services.tickets.settings import TicketsSettings
from ticketing.cli import SERVICES, service_class, settings_class
from ticketing.web import WebSettings

ROOT = Path(__file__).parents[3]
SETTINGS = (AuthSettings, TicketsSettings, OrdersSettings, PaymentsSettings, ConfirmationSettings,
            ExpirationSettings, GatewaySettings, FrontendSettings, WebSettings, BrokerSetupSettings)
#: read by services.common.keys (PEM keys, checked when auth and the gateway start), not a settings field
KEYS = {"JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"}
#: what the README does not list on purpose
UNDOCUMENTED = {"TICKETING_CRASH_AFTER_COMMIT"}  # a test hook
#: a valid secret for the classes that require one
SECRET = {"SECRET_KEY": "settings-test-secret-0123456789abcdef"}


def all_settings() -> dict[str, str]:
    names: dict[str, str] = {}
    for cls in SETTINGS:
        names.update(cls.names())
    return names


def secret_names() -> set[str]:
    return {f.name.upper() for cls in SETTINGS for f in dataclasses.fields(cls) if f.metadata.get("secret")}


def readme_table() -> set[str]:
    """The variables the README's configuration table names (its first and last columns)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration"):]
    section = section[:section.index("\n## ", 1)]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = line.split("|")
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", cells[1] + cells[3]))
    return names


def test_every_variable_of_the_readme_is_a_setting():
    documented = readme_table()
    known = set(all_settings()) | KEYS
    files = {f"{name}_FILE" for name in secret_names() | KEYS}
    assert documented - known - files == set()


def test_every_setting_is_in_the_readme_with_a_line_saying_what_it_is_for():
    documented = readme_table()
    assert set(all_settings()) - documented - UNDOCUMENTED == set()
    assert all(doc.strip() for doc in all_settings().values())


def test_every_service_has_its_settings_class_and_its_provider():
    for name in SERVICES:
        cls = settings_class(name)
        assert cls.service == name
        provider = service_class(name).settings
        assert isinstance(provider, Settings) and provider.settings_class is cls


def test_the_nameko_config_wins_over_the_environment_and_empty_means_unset():
    environ = {"ORDERS_SWEEP_INTERVAL": "7", "EXPIRATION_WINDOW_SECONDS": "", "AMQP_URI": "amqp://env/"}
    settings = OrdersSettings.load({"ORDERS_SWEEP_INTERVAL": "3", "AMQP_URI": ""}, environ)
    assert settings.orders_sweep_interval == 3.0
    assert settings.amqp_uri == "amqp://env/"
    assert settings.expiration_window_seconds == 900.0


def test_defaults_are_those_of_the_readme():
    settings = OrdersSettings.load({}, {})
    assert (settings.amqp_uri, settings.queue_type, settings.internal_rpc_timeout) == (
        "amqp://guest:guest@localhost:5672/", "classic", 5.0)
    assert (settings.orders_sweep_interval, settings.orders_expiry_grace_seconds,
            settings.orders_hold_timeout_seconds) == (5.0, 10.0, 120.0)
    assert settings.public_url == "http://localhost:8080"
    assert ConfirmationSettings.load({}, {"PORT": "9000", "VAR_DIR": "/srv"}).public_url == "http://localhost:9000"
    assert ConfirmationSettings.load({}, {"VAR_DIR": "/srv"}).mail_outbox_dir == "/srv/mail"
    assert FrontendSettings.load(SECRET, {"PORT": "8123"}).gateway_url == "http://127.0.0.1:8123"
    assert WebSettings.load({}, {}).port == 8000


@pytest.mark.parametrize("cls", SETTINGS)
def test_a_bad_value_stops_the_component_with_the_settings_name(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f.name.upper()
        if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}:
            with pytest.raises(ConfigurationError, match=rf"^{name} must be a number, got 'soon'$"):
                cls.load({**SECRET, name: "soon"}, {})
        if f.metadata.get("check") is not None and not isinstance(f.default, str):
            with pytest.raises(ConfigurationError, match=rf"^{name} must be"):
                cls.load({**SECRET, name: "-5"}, {})


def test_choices_are_checked_and_normalised():
    assert CommonSettings.load({"QUEUE_TYPE": " Quorum "}, {}).queue_type == "quorum"
    with pytest.raises(ConfigurationError, match="^QUEUE_TYPE must be classic or quorum, got 'stream'$"):
        CommonSettings.load({}, {"QUEUE_TYPE": "stream"})


def test_a_secret_may_come_from_a_file(tmp_path):
    (tmp_path / "secret").write_text(SECRET["SECRET_KEY"] + "\n")
    settings = FrontendSettings.load({}, {"SECRET_KEY_FILE": str(tmp_path / "secret")})
    assert settings.secret_key == SECRET["SECRET_KEY"]
    with pytest.raises(ConfigurationError, match="SECRET_KEY_FILE=.* cannot be read"):
        FrontendSettings.load({}, {"SECRET_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set"):
        FrontendSettings.load({}, {})


def test_extensions_of_a_service_without_a_provider_read_the_settings_they_need():
    class Container:
        config = {"MAIL_MAX_ATTEMPTS": "4"}

    container = Container()
    assert settings_of(container, ConfirmationSettings).mail_max_attempts == 4
    assert settings_of(container, ConfirmationSettings) is settings_of(container, ConfirmationSettings)


IMPORT_EVERYTHING = """
import json, os, sys

names, ours = set(json.loads(sys.argv[1])), json.loads(sys.argv[3])
touched = []
original = os._Environ.__getitem__

def recording(self, key):
    if key in names:
        frame = sys._getframe(1)
        while frame.f_code.co_filename.endswith(("os.py", "_collections_abc.py", " os>", " _collections_abc>")):
            frame = frame.f_back
        where = os.path.abspath(frame.f_code.co_filename)
        if where.startswith(tuple(ours)):  # read by our code, not by a library
            touched.append(f"{key} ({where}:{frame.f_lineno})")
    return original(self, key)

os._Environ.__getitem__ = recording
import eventlet
eventlet.monkey_patch()
import importlib
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
print(json.dumps(sorted(set(touched))))
"""


def test_importing_every_component_reads_no_setting_from_the_environment():
    """Every setting set to nonsense: an import that parsed one would fail, one that read one is named."""
    modules = [f"services.{name}.{part}" for name in SERVICES for part in ("service", "settings")]
    modules += ["gateway.app", "frontend.app", "ticketing.cli", "ticketing.web", "ticketing.status",
                "ticketing.supervisor", "services.common.broker_users"]
    names = sorted(all_settings())
    env = {"PATH": "/usr/bin:/bin", **{name: "soon" for name in names}}
    ours = [f"{ROOT / package}/" for package in ("services", "gateway", "frontend", "ticketing")]
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", IMPORT_EVERYTHING, json.dumps(names),
                           json.dumps(modules), json.dumps(ours)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
