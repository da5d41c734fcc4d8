"""The image, checked without a Docker engine: the Dockerfile's shape (multi-
stage, non-root, `ticketing` entrypoint, PSYCOPG_WAIT_FUNC), that what it
copies exists and is not excluded by .dockerignore, that a regular install of
the distribution (what the image does) carries every file the components need,
and that the CLI accepts the commands the image is run with."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from .support import CLI_SUBCOMMANDS, DOCKERFILE, REPO, ticketing_command

PACKAGES = ("ticketing", "services", "gateway", "frontend")
# Files a component reads at run time besides its modules (pyproject's package-data).
RUNTIME_SUFFIXES = {".py", ".mako", ".ini", ".html", ".css", ".js", ".svg", ".json", ".yaml", ".txt"}


# ------------------------------------------------------ Dockerfile parsing

def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[dict]:
    """[{base, name, instructions}] with global ARG defaults substituted in FROM."""
    args: dict[str, str] = {}
    result: list[dict] = []
    for keyword, rest in instructions():
        if keyword == "ARG" and not result:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            result.append({"base": base, "name": name, "instructions": []})
        elif result:
            result[-1]["instructions"].append((keyword, rest))
    return result


def final_stage() -> dict:
    return stages()[-1]


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), f"use the exec form: {rest}"
    return value


def env_of(stage: dict) -> dict[str, str]:
    env = {}
    for keyword, rest in stage["instructions"]:
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", rest):
                env[key] = value.strip('"')
    return env


# ------------------------------------------------------- .dockerignore

def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            elif line[i] == "[":
                end = line.index("]", i)
                regex += line[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append((negate, re.compile(regex + r"\Z")))
    return patterns


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the repo) out of the
    build context: the last pattern matching the path or one of its parent
    folders decides, as Docker's matcher does."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    excluded = False
    for negate, pattern in dockerignore_patterns():
        if any(pattern.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


# ------------------------------------------------------------------ tests

def test_is_multi_stage_on_python_311_slim():
    all_stages = stages()
    assert len(all_stages) >= 2
    assert final_stage()["base"] == "python:3.11-slim"
    copies_from_builder = [
        rest for keyword, rest in final_stage()["instructions"] if keyword == "COPY" and rest.startswith("--from=")
    ]
    assert copies_from_builder, "the runtime stage takes the built venv from the builder"
    builder_names = {s["name"] for s in all_stages[:-1]}
    for rest in copies_from_builder:
        assert rest.split()[0].split("=", 1)[1] in builder_names


def test_runs_as_a_fixed_non_root_user():
    users = [rest for keyword, rest in final_stage()["instructions"] if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets Kubernetes verify runAsNonRoot"
    from .support import load_values

    values = load_values("values.yaml")
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_the_ticketing_cli_and_the_default_command_is_a_component(components):
    stage = final_stage()
    (entrypoint,) = [exec_form(rest) for keyword, rest in stage["instructions"] if keyword == "ENTRYPOINT"]
    assert entrypoint == ["ticketing"]
    (cmd,) = [exec_form(rest) for keyword, rest in stage["instructions"] if keyword == "CMD"]
    assert cmd[0] in CLI_SUBCOMMANDS
    if cmd[0] == "run":
        assert cmd[1] in components


def test_sets_the_environment_every_component_needs():
    env = env_of(final_stage())
    assert env["PSYCOPG_WAIT_FUNC"] == "wait_select"
    assert env["PORT"] == env["HEALTH_PORT"] == "8000"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "/opt/venv/bin" in env["PATH"]


def test_copies_only_what_exists_and_is_in_the_build_context():
    for stage in stages():
        for keyword, rest in stage["instructions"]:
            if keyword not in ("COPY", "ADD") or rest.startswith("--from="):
                continue
            assert keyword == "COPY", "ADD fetches and unpacks; COPY is enough"
            *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
            for source in sources:
                if any(ch in source for ch in "*?["):
                    continue  # optional by design (e.g. config.yam[l])
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repo"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_local_state_out():
    for path in (".env", ".git/config", ".venv/bin/python", "var/auth.db", "services/auth/__pycache__/x.pyc", "tests/unit/test_x.py"):
        assert dockerignored(path), path
    for path in ("pyproject.toml", "README.md", "config.yaml", "ticketing/cli.py", "services/auth/service.py", "frontend/templates/base.html"):
        assert not dockerignored(path), path


def test_console_script_is_the_entrypoint():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ticketing"] == "ticketing.cli:main"
    assert project["requires-python"].startswith(">=3.11")


def test_a_regular_install_carries_every_runtime_file(tmp_path):
    """The image installs the project non-editable: whatever setuptools leaves
    out (templates, static files, migrations in folders without __init__.py)
    is missing in the container."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(build)],
        cwd=source, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = {
        p.relative_to(source).as_posix()
        for package in PACKAGES
        for p in (source / package).rglob("*")
        if p.is_file() and p.suffix in RUNTIME_SUFFIXES and "tests" not in p.relative_to(source).parts
    }
    installed = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()}
    missing = sorted(expected - installed)
    assert not missing, f"not installed by `pip install .` (so not in the image): {missing}"


@pytest.mark.parametrize("subcommand", CLI_SUBCOMMANDS)
def test_the_cli_has_the_subcommands_the_deployment_uses(subcommand):
    result = subprocess.run([*ticketing_command(), subcommand, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_cli_rejects_an_unknown_component():
    result = subprocess.run([*ticketing_command(), "run", "no-such-component"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
