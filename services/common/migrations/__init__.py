"""Schema migrations per service, with Alembic.

One Alembic environment (this folder's ``env.py``) serves every service; each
service keeps its revisions in ``services/<name>/migrations/``. Services apply
them on start-up (idempotent; on PostgreSQL under an advisory lock so replicas
don't race), in a short-lived child process (``ticketing.cli.migrate_in_child``) so
that Alembic never stays in a service's memory; ``ticketing migrate`` applies them
ahead of a deployment.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

HERE = Path(__file__).resolve().parent
SERVICES_DIR = HERE.parent.parent


def alembic_config(service: str, connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["service"] = service
    cfg.attributes["metadata"] = importlib.import_module(f"services.{service}.models").Base.metadata
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(service: str, engine_or_url, revision: str = "head") -> None:
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    with engine.begin() as connection:
        command.upgrade(alembic_config(service, connection), revision)


def revision(service: str, engine_or_url, message: str) -> None:
    """Autogenerate a new revision of ``service`` from its models (a developer tool)."""
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    with engine.begin() as connection:
        command.upgrade(alembic_config(service, connection), "head")
        command.revision(alembic_config(service, connection), message=message, autogenerate=True)
