"""deploy/postgres/init-roles.sh (compose's first start): a role per service owning its database, and
no role can connect to another service's database."""
import os
import subprocess
import uuid

import psycopg
import pytest

from tests.support.postgres import ADMIN_URL

from .support import DATABASE_SERVICES, REPO

pytestmark = pytest.mark.integration


@pytest.fixture
def roles():
    prefix = f"ticketing_test_roles_{uuid.uuid4().hex[:6]}_"
    passwords = {svc: uuid.uuid4().hex for svc in DATABASE_SERVICES}
    admin = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    env = {**os.environ, "TICKETING_DB_PREFIX": prefix, "POSTGRES_USER": admin.get("user", "postgres"),
           "PGHOST": admin.get("host", "127.0.0.1"), "PGPORT": str(admin.get("port", 5432)),
           **({"PGPASSWORD": admin["password"]} if admin.get("password") else {}),
           **{f"{svc.upper()}_DB_PASSWORD": password for svc, password in passwords.items()}}
    try:
        subprocess.run(["sh", str(REPO / "deploy/postgres/init-roles.sh")], env=env, check=True,
                       capture_output=True, timeout=60)
        yield prefix, passwords, admin
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for svc in DATABASE_SERVICES:
                conn.execute(f'DROP DATABASE IF EXISTS "{prefix}{svc}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{prefix}{svc}"')


def test_each_service_role_reaches_only_its_own_database(roles):
    prefix, passwords, admin = roles
    host, port = admin.get("host", "127.0.0.1"), admin.get("port", 5432)

    def connect(role, database):
        return psycopg.connect(host=host, port=port, user=f"{prefix}{role}", password=passwords[role],
                               dbname=f"{prefix}{database}", connect_timeout=5)

    for svc in DATABASE_SERVICES:
        with connect(svc, svc) as conn:  # owner: may create its tables (migrations)
            conn.execute("CREATE TABLE probe (id int)")
            assert conn.execute("SELECT current_user").fetchone()[0] == f"{prefix}{svc}"
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect("tickets", "auth")
    with psycopg.connect(host=host, port=port, user=f"{prefix}orders", password=passwords["orders"],
                         dbname=f"{prefix}orders") as conn:
        assert conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                            "WHERE rolname = current_user").fetchone() == (False, False, False)
