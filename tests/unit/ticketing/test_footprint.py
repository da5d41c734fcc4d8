"""What a process loads stays what it needs (issue: peak RSS <= 150 MB per component).

Each check runs in a fresh interpreter, started the way ``ticketing run`` starts one:
the test process itself has imported everything long ago."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[3]


def run_python(code: str, env: dict | None = None) -> str:
    import os

    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_services_and_the_web_arbiter_do_not_load_what_only_one_path_uses():
    out = run_python("""
        import sys
        import ticketing.cli  # sets the environment eventlet reads (no dnspython)
        import eventlet
        eventlet.monkey_patch()
        import ticketing.web, services.common.side_port
        print("arbiter:", sorted({"flask", "jinja2"} & {m.split(".")[0] for m in sys.modules}))
        for name in ticketing.cli.SERVICES:
            ticketing.cli.service_class(name)
        loaded = {m.split(".")[0] for m in sys.modules}
        print("services:", sorted({"alembic", "mako", "dns", "requests", "flask", "stripe", "sendgrid"} & loaded))
    """)
    assert "arbiter: []" in out
    assert "services: []" in out


def test_a_service_migrates_in_a_child_process_and_never_loads_alembic(tmp_path):
    out = run_python("""
        import os, sqlite3, sys
        import ticketing.cli
        import eventlet
        eventlet.monkey_patch()
        ticketing.cli.service_class("tickets")
        print("migrated:", ticketing.cli.migrate_in_child("tickets"))
        print("alembic loaded:", "alembic" in sys.modules)
        with sqlite3.connect(os.path.join(os.environ["VAR_DIR"], "tickets.db")) as db:
            print("tables:", sorted(r[0] for r in db.execute("select name from sqlite_master where type='table'")))
    """, env={"VAR_DIR": str(tmp_path), "TICKETS_DATABASE_URL": ""})
    assert "migrated: True" in out
    assert "alembic loaded: False" in out
    assert "'tickets'" in out and "'alembic_version'" in out


def test_a_failed_migration_in_the_child_leaves_it_to_the_service(tmp_path):
    out = run_python("""
        import ticketing.cli
        import eventlet
        eventlet.monkey_patch()
        print("migrated:", ticketing.cli.migrate_in_child("tickets"))
    """, env={"TICKETS_DATABASE_URL": f"sqlite:///{tmp_path}/missing-directory/tickets.db"})
    assert "migrated: False" in out


def test_host_lookups_run_on_the_thread_pool_and_answer_as_the_system_does():
    out = run_python("""
        import ticketing.cli
        import eventlet
        eventlet.monkey_patch()
        import socket
        from eventlet.green import socket as green_socket
        from eventlet.patcher import original
        from services.common import resolver
        resolver.install()
        resolver.install()  # twice is harmless
        assert socket.getaddrinfo.runs_in_thread_pool and green_socket.getaddrinfo is socket.getaddrinfo
        system = original("socket").getaddrinfo("localhost", 5672, 0, socket.SOCK_STREAM)
        print("same:", socket.getaddrinfo("localhost", 5672, 0, socket.SOCK_STREAM) == system)
    """)
    assert "same: True" in out
