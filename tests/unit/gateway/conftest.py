"""The gateway against fake services: only the HTTP layer is under test here."""
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from gateway.app import create_app
from services.common import tokens


class FakeRpc:
    """Stands in for the RPC pool: ``fake.tickets.get_ticket = lambda id: ...``."""

    def __init__(self):
        self.calls = []
        self.services: dict = {}

    def __getattr__(self, service):
        if service.startswith("_") or service in ("calls", "services"):
            raise AttributeError(service)
        return self.services.setdefault(service, _Recorder(service, self.calls))

    @contextmanager
    def client(self):
        yield self


class _Recorder(SimpleNamespace):
    def __init__(self, name, calls):
        super().__init__()
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_calls", calls)

    def __setattr__(self, method, fn):
        def record(*args):
            self._calls.append((f"{self._name}.{method}", args))
            return fn(*args)

        object.__setattr__(self, method, record)


@pytest.fixture
def rpc():
    return FakeRpc()


@pytest.fixture
def app(rpc, monkeypatch):
    return create_app({"RPC_POOL": rpc, "TESTING": True, "REVOCATION_POLL_SECONDS": 0})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def signed_in(client):
    """Give the test client an access cookie for a user; returns the user."""

    def sign_in(user_id="a" * 32, email="ann@example.com"):
        client.set_cookie("ticketing_access", tokens.issue_access_token(user_id, email))
        return {"id": user_id, "email": email}

    return sign_in


def errors_of(response):
    body = response.get_json()
    assert set(body) == {"errors"} and body["errors"], body
    return body["errors"]
