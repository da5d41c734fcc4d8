"""What the deployment tests share: paths, the chart renderer, the compose
file, and what the CLI says its components are."""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ticketing"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
#: the auth process without a password hash running, measured (services/auth/passwords.py)
AUTH_BASE_MIB = 95

# The Kubernetes version whose schemas the manifests are validated against
# (shipped inside kubernetes-validate, so no network). The chart asks for >=1.25.
KUBE_VERSION = "1.33.0"

# The nameko services and the web components, as the chart, compose and
# the CLI (ticketing/cli.py) name them. `web` (gateway + frontend in one process, what
# `ticketing up` serves) is a local-development component: not deployed.
SERVICES = ("auth", "tickets", "orders", "expiration", "payments", "confirmation")
WEB = ("gateway", "frontend")
DEPLOYED = SERVICES + WEB
DATABASE_SERVICES = ("auth", "tickets", "orders", "payments", "confirmation")

# (liveness path, readiness path) each component serves on port 8000.
HEALTH_PATHS = {
    **{name: ("/healthz", "/readyz") for name in SERVICES},
    "gateway": ("/api/healthz", "/api/readyz"),
    "frontend": ("/healthz", "/healthz"),
    "web": ("/api/healthz", "/api/readyz"),
}

# Subcommands of `ticketing` the image, compose and the chart rely on.
CLI_SUBCOMMANDS = ("run", "migrate", "up", "broker-users")

SECRET_ENV = ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SECRET_KEY", "STRIPE_KEY", "SENDGRID_API_KEY")


def cli_components() -> list[str]:
    """The components `ticketing run` accepts, from the CLI itself."""
    try:
        from ticketing import cli
    except ImportError as exc:  # pragma: no cover - depends on the lead's module
        pytest.fail(f"cannot import ticketing.cli: {exc}")
    components = getattr(cli, "COMPONENTS", None)
    if components is None:  # pragma: no cover
        pytest.fail("ticketing.cli.COMPONENTS is missing: the deployment uses it as the list of components")
    return list(components)


# ---------------------------------------------------------------- the chart

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _chart():
    import helm_python

    return helm_python.Chart.load(str(CHART))


def load_values(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text()) or {}


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render(values: dict | None = None, *, name: str = "shop", namespace: str = "market") -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return _chart().render(values or {}, name=name, namespace=namespace)


def manifests(values: dict | None = None, **kwargs) -> list[dict]:
    """Every Kubernetes object the chart renders with these values."""
    out = []
    for path, text in sorted(render(values, **kwargs).items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.load_all(text, Loader=_Loader):
            if doc:
                out.append(doc)
    return out


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}


def component_of(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


_validated: set[str] = set()


def validate_k8s(obj: dict) -> None:
    """Validate one object against the Kubernetes schemas (strict: unknown
    fields are errors). Identical objects are validated once per session."""
    import kubernetes_validate
    from kubernetes_validate import utils

    if not hasattr(utils.schema_contents, "cache_info"):
        # validate() re-reads the 1.4 MB definitions file on every call; the
        # parsed schemas are never modified, so keep them.
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)

    key = json.dumps(obj, sort_keys=True)
    if key in _validated:
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    _validated.add(key)


# ------------------------------------------------------------------ compose

@functools.lru_cache(maxsize=None)
def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str], missing: set[str]):
    """Compose-style interpolation of one value tree; names that would be
    unset and have no default go into `missing`. `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                missing.add(name)
                return ""
            return current
        if op in (":+", "+"):
            return arg if current else ""
        if current is None:
            missing.add(name)
            return ""
        return current

    parts = value.split("$$")
    return "$".join(_VAR.sub(replace, part) for part in parts)


def compose_resolved(env: dict[str, str] | None = None) -> tuple[dict, set[str]]:
    missing: set[str] = set()
    resolved = interpolate(compose_raw(), env if env is not None else env_example(), missing)
    return resolved, missing


def ticketing_command() -> list[str]:
    """The installed ``ticketing`` script (what the image's ENTRYPOINT is), else the module."""
    script = Path(sys.executable).with_name("ticketing")
    if script.exists():
        return [str(script)]
    found = shutil.which("ticketing")
    return [found] if found else [sys.executable, "-m", "ticketing.cli"]
