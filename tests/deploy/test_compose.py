"""docker-compose.yml, checked without a Docker engine: it is a valid Compose
file (compose-spec schema, shipped offline inside check-jsonschema), and
everything it refers to (image, build, commands, env files, variables,
depends_on, volumes, the proxy's routes) resolves."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources

import pytest

from .support import (
    COMPOSE_FILE,
    DATABASE_SERVICES,
    DEPLOYED,
    HEALTH_PATHS,
    REPO,
    SECRET_ENV,
    SERVICES,
    compose_raw,
    compose_resolved,
    env_example,
)

APP_IMAGE = "ticketing:local"


@pytest.fixture(scope="module")
def compose():
    resolved, missing = compose_resolved()
    assert not missing, f"variables with no value in .env.example and no default: {sorted(missing)}"
    return resolved


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def app_services(services) -> dict[str, dict]:
    """The services that run the Ticketing image."""
    return {name: svc for name, svc in services.items() if svc.get("image") == APP_IMAGE}


def env_of(svc) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# ------------------------------------------------------------ the schema

def test_matches_the_compose_specification():
    import jsonschema

    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose_raw()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_variable_without_a_default_is_in_env_example():
    _, missing = compose_resolved()
    assert not missing
    # and the secrets really must be set: with nothing, compose refuses to start
    _, missing_without_env = compose_resolved({})
    assert {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"} <= missing_without_env


def test_env_example_is_committed_and_env_is_not():
    assert (REPO / ".env.example").is_file()
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0
    assert ignored, ".env must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, capture_output=True)
    assert tracked.returncode != 0, ".env must never be committed"
    example = env_example()
    for key in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", *(f"{s.upper()}_DB_PASSWORD" for s in DATABASE_SERVICES),
                *(f"{c.upper()}_AMQP_PASSWORD" for c in (*SERVICES, "gateway"))):
        assert example.get(key), f"{key} missing from .env.example"


# ----------------------------------------------------- images and builds

def test_every_service_has_an_image_or_a_build(services):
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name


def test_one_image_built_once_runs_every_component(services):
    apps = app_services(services)
    builders = [name for name, svc in apps.items() if "build" in svc]
    assert builders == ["migrate"], "exactly one service builds the shared image"
    build = services["migrate"]["build"]
    context = REPO / build.get("context", ".")
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    # no other service builds anything else from the repo
    assert [n for n, s in services.items() if "build" in s] == ["migrate"]


def test_every_component_is_deployed_with_a_command_the_cli_accepts(services, components):
    commands = {name: svc["command"] for name, svc in app_services(services).items()}
    for name, command in commands.items():
        assert isinstance(command, list), f"{name}: use the exec form"
        if command[0] == "run":
            assert len(command) == 2 and command[1] in components, f"{name}: ticketing {' '.join(command)}"
            assert command[1] == name, "a compose service is named after its component"
        else:
            assert command in (["migrate"], ["broker-users"]), f"{name}: unexpected command {command}"
    ran = {c[1] for c in commands.values() if c[0] == "run"}
    assert ran == set(DEPLOYED)
    assert set(DEPLOYED) <= set(components)


def test_third_party_images_are_the_expected_ones(services):
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3") and "management" in services["rabbitmq"]["image"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["proxy"]["image"].startswith("nginx:")


# ------------------------------------------------------ environment

#: the one container that may hold each secret (by variable or by mounted file)
OWN_SECRETS = {"JWT_PRIVATE_KEY": "auth", "JWT_PUBLIC_KEY": "gateway", "SECRET_KEY": "frontend",
               "STRIPE_KEY": "payments", "SENDGRID_API_KEY": "confirmation"}


def test_each_container_gets_only_its_own_secrets(compose, services):
    for name, svc in app_services(services).items():
        assert "env_file" not in svc, f"{name}: an env_file hands every secret to every container"
        env = env_of(svc)
        for secret, owner in OWN_SECRETS.items():
            given = secret in env or f"{secret}_FILE" in env
            assert given == (name == owner), f"{name}: {secret}"
        for mounted in svc.get("secrets", []):
            source = mounted if isinstance(mounted, str) else mounted["source"]
            assert f"/run/secrets/{source}" in env.values(), f"{name}: {source} mounted but unused"
        passwords = {k for k in env if k.endswith("_PASSWORD")}
        if name == "broker-setup":
            assert passwords == {"RABBITMQ_ADMIN_PASSWORD", *(f"{c.upper()}_AMQP_PASSWORD" for c in (*SERVICES,
                                                                                                     "gateway"))}
        else:
            assert not passwords, f"{name}: {passwords}"
    assert set(compose["secrets"]) == {"jwt_private_key", "jwt_public_key", "secret_key"}
    raw = COMPOSE_FILE.read_text()
    for value in env_example().values():
        if value.startswith("change-me"):
            assert value not in raw


def test_app_services_share_settings_and_each_has_its_own_broker_user(services):
    for name, svc in app_services(services).items():
        env = env_of(svc)
        if name == "broker-setup":
            continue
        assert env["PSYCOPG_WAIT_FUNC"] == "wait_select", name
        assert env["HEALTH_PORT"] == env["PORT"] == "8000"
        assert env["PROXY_COUNT"] == "1", "the gateway is behind exactly one proxy"
        assert svc.get("read_only") is True and "/tmp" in svc.get("tmpfs", [])
        if name in ("frontend", "migrate"):
            assert "AMQP_URI" not in env, f"{name} does not talk to the broker"
        else:
            assert re.fullmatch(rf"amqp://ticketing-{name}:[^@]+@rabbitmq:5672/", env["AMQP_URI"]), env["AMQP_URI"]
            assert services[name]["depends_on"]["broker-setup"]["condition"] == "service_completed_successfully"


def test_each_service_gets_its_own_database_and_migrate_gets_all(services):
    def urls(svc):
        return {k: v for k, v in env_of(svc).items() if k.endswith("_DATABASE_URL")}

    for name, svc in app_services(services).items():
        got = urls(svc)
        if name == "migrate":
            expected = {f"{s.upper()}_DATABASE_URL" for s in DATABASE_SERVICES}
        elif name in DATABASE_SERVICES:
            expected = {f"{name.upper()}_DATABASE_URL"}
        else:
            expected = set()
        assert set(got) == expected, name
        for key, url in got.items():
            database = key.removesuffix("_DATABASE_URL").lower()
            assert re.fullmatch(rf"postgresql\+psycopg://ticketing_{database}:[^@]+@postgres:5432/ticketing_{database}",
                                url), url


def test_postgres_creates_one_database_and_role_per_service(services):
    mounts = services["postgres"]["volumes"]
    init = [m for m in mounts if isinstance(m, str) and "/docker-entrypoint-initdb.d/" in m]
    assert init, "an init script creates the databases on first start"
    script = (REPO / init[0].split(":")[0]).read_text()
    assert re.search(r"for service in (.+); do", script).group(1).split() == list(DATABASE_SERVICES)
    env = env_of(services["postgres"])
    assert {f"{s.upper()}_DB_PASSWORD" for s in DATABASE_SERVICES} <= set(env)


def test_frontend_reaches_the_gateway(services):
    assert env_of(services["frontend"])["GATEWAY_URL"] == "http://gateway:8000"


# ------------------------------------------------- ordering and health

def test_depends_on_resolves_with_valid_conditions(services):
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, how in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert target != name
            condition = how["condition"]
            assert condition in conditions
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy but it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") in ("no", None), f"{target} must be one-shot"


def test_depends_on_has_no_cycle(services):
    graph = {name: set(svc.get("depends_on") or {}) for name, svc in services.items()}
    done: set[str] = set()

    def visit(node, path):
        assert node not in path, f"cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, [*path, node])
        done.add(node)

    for node in graph:
        visit(node, [])


def test_services_with_a_database_wait_for_the_migrations(services):
    for name in DATABASE_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"


def test_components_are_healthchecked_on_their_health_endpoints(services):
    for name in DEPLOYED:
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        _, ready = HEALTH_PATHS[name]
        assert f"http://127.0.0.1:8000{ready}" in " ".join(test), name
    for name in ("rabbitmq", "postgres", "proxy"):
        assert services[name]["healthcheck"]["test"]


# --------------------------------------------------- volumes and proxy

def test_volumes_resolve(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_proxy_is_the_one_origin_on_8080(services):
    proxy = services["proxy"]
    assert any(str(p).endswith("8080:8080") for p in proxy["ports"])
    assert "8080:8080" in str(proxy["ports"][0])
    published = [n for n, s in services.items() if s.get("ports")]
    assert set(published) <= {"proxy", "rabbitmq"}, "only the proxy (and RabbitMQ's UI) face the host"
    conf_mount = next(m for m in proxy["volumes"] if "nginx" in m)
    conf = (REPO / conf_mount.split(":")[0]).read_text()
    assert re.search(r"listen\s+8080;", conf)
    locations = dict(re.findall(r"location\s+([=\s/\w]+?)\s*\{\s*proxy_pass\s+\$(\w+);", conf))
    upstreams = dict(re.findall(r"set\s+\$(\w+)\s+(\S+);", conf))
    routes = {loc.strip(): upstreams[var] for loc, var in locations.items()}
    assert routes == {
        "= /api": "http://gateway:8000",
        "/api/": "http://gateway:8000",
        "/": "http://frontend:8000",
    }
    depends = proxy["depends_on"]
    assert depends["gateway"]["condition"] == depends["frontend"]["condition"] == "service_healthy"


def test_confirmation_keeps_its_outbox_on_a_volume(services):
    svc = services["confirmation"]
    outbox = env_of(svc)["MAIL_OUTBOX_DIR"]
    assert any(m.endswith(f":{outbox}") for m in svc["volumes"])


def test_all_services_are_named(services):
    assert set(SERVICES) <= set(services)
