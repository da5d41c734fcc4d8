"""Every service has the same layers, each with one meaning (README "Architecture"):

    service.py        entrypoints: parse, call the service layer, return
    service_layer.py  the transactions and the calls to other services and systems
    domain.py         the rules: no session, no transaction, no I/O
    repository.py     the queries (a service with a database), behind ``Store``
    models.py, migrations/   its tables (a service with a database)
    settings.py       its settings

and what differs between PostgreSQL and SQLite lives in ``services/common/store.py`` only.
These tests read the source; they import nothing of the services.
"""
import ast
from pathlib import Path

import pytest

from services.common.broker_users import SERVICES
from services.common.config import SERVICES_WITH_DATABASE

ROOT = Path(__file__).resolve().parents[3]
SERVICES_DIR = ROOT / "services"
STORE = SERVICES_DIR / "common" / "store.py"

EVERY_SERVICE = ("service.py", "service_layer.py", "domain.py", "settings.py")
WITH_A_DATABASE = ("models.py", "repository.py", "migrations")

#: what a rule needs none of: the database, its sessions and engines, and the layers above the rules
NOT_FOR_RULES = ("sqlalchemy", "nameko_sqlalchemy", "psycopg", "services.common.store",
                 "services.common.green_psycopg")
#: parameter names and attributes that mean a database session or transaction
SESSION_NAMES = {"session", "tx", "store", "db", "conn", "connection", "engine"}
SESSION_CALLS = {"session", "execute", "scalars", "scalar", "flush", "commit", "rollback", "transaction",
                 "read", "claim"}


def source(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.Module, package: str) -> set[str]:
    """Absolute names of every module ``tree`` imports (relative imports resolved against ``package``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:  # relative: from the package (level 1) or above it
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{module}" if module else base
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_every_service_package_is_a_known_service():
    packages = sorted(path.parent.name for path in SERVICES_DIR.glob("*/__init__.py") if path.parent.name != "common")
    assert packages == sorted(SERVICES)
    assert set(SERVICES_WITH_DATABASE) <= set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_the_same_layer_modules(name):
    package = SERVICES_DIR / name
    missing = [module for module in EVERY_SERVICE if not (package / module).exists()]
    assert not missing, f"services/{name} lacks {missing}"
    has_database = [module for module in WITH_A_DATABASE if (package / module).exists()]
    if name in SERVICES_WITH_DATABASE:
        assert has_database == list(WITH_A_DATABASE), f"services/{name} has a database but only {has_database}"
    else:
        assert has_database == [], f"services/{name} keeps no database but has {has_database}"


@pytest.mark.parametrize("name", SERVICES)
def test_the_rules_touch_no_database(name):
    """domain.py: no SQLAlchemy, no Store, nothing of the layers above it, no session or transaction
    taken or used; a unit test calls it without a database."""
    tree = source(SERVICES_DIR / name / "domain.py")
    package = f"services.{name}"
    above = (f"{package}.repository", f"{package}.service_layer", f"{package}.service")
    wrong = sorted(module for module in imported(tree, package) if within(module, NOT_FOR_RULES + above))
    assert not wrong, f"services/{name}/domain.py imports {wrong}"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = {arg.arg for arg in node.args.args + node.args.kwonlyargs}
            taken = arguments & SESSION_NAMES
            assert not taken, f"services/{name}/domain.py: {node.name}() takes {taken}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in SESSION_CALLS, f"services/{name}/domain.py uses .{node.attr} (line {node.lineno})"


@pytest.mark.parametrize("name", SERVICES)
def test_entrypoints_open_no_transaction(name):
    """service.py parses, calls the service layer, returns: the transactions are the service layer's
    (an event handler may pass on the ``tx`` its decorator opened)."""
    tree = source(SERVICES_DIR / name / "service.py")
    wrong = sorted(module for module in imported(tree, f"services.{name}")
                   if within(module, ("sqlalchemy", f"services.{name}.repository")))
    assert not wrong, f"services/{name}/service.py imports {wrong}: it should call its service layer"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"transaction", "read", "session", "claim"}:
            pytest.fail(f"services/{name}/service.py uses .{node.attr} (line {node.lineno}): "
                        "transactions belong in service_layer.py")


def python_files():
    for top in ("services", "gateway", "frontend", "ticketing", "bench"):
        yield from (ROOT / top).rglob("*.py")


def test_only_the_store_knows_the_database_dialects():
    """PostgreSQL's and SQLite's differences (their INSERT … ON CONFLICT, row locks) are behind
    ``Store`` (``Store.upsert``, ``Store.lock_rows``, ``StoreApi.claim``); migrations may branch too."""
    for path in python_files():
        if path == STORE or "migrations" in path.parts:
            continue
        tree = source(path)
        dialects = sorted(module for module in imported(tree, "") if within(module, ("sqlalchemy.dialects",)))
        assert not dialects, f"{path.relative_to(ROOT)} imports {dialects}: use services/common/store.py"
        if "services" in path.parts:
            names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
            assert "dialect" not in names, f"{path.relative_to(ROOT)} branches on the dialect: use Store"
