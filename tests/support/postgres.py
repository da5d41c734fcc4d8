"""Throwaway PostgreSQL databases for tests."""
from __future__ import annotations

import itertools
import os

import psycopg

ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class PostgresAdmin:
    def __init__(self, prefix: str, admin_url: str = ADMIN_URL):
        self.prefix, self.admin_url = prefix, admin_url
        self.created: list[str] = []
        self._counter = itertools.count()

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def url(self, name: str) -> str:
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{name}"

    def create_database(self, label: str | None = None) -> str:
        name = f"{self.prefix}_{label or next(self._counter)}"
        self._execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        for name in self.created:
            try:
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass
        self.created.clear()
