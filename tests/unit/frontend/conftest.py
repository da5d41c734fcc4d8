"""Fixtures of the frontend tests: a fake gateway on a local port and the frontend in front of it."""
import pytest

from frontend.app import create_app
from tests.unit.frontend.frontend_fake_gateway import FakeGatewayState, ServedApp, create_fake_gateway
from tests.unit.frontend.frontend_pages_helpers import Visitor


@pytest.fixture(scope="session")
def fake_gateway_server():
    state = FakeGatewayState()
    served = ServedApp(create_fake_gateway(state))
    state.url = served.url
    yield state
    served.stop()


@pytest.fixture
def fake(fake_gateway_server):
    """The fake gateway's state, empty for each test."""
    fake_gateway_server.reset()
    yield fake_gateway_server
    fake_gateway_server.reset()


@pytest.fixture
def make_app(fake):
    def make(**overrides):
        config = {
            "GATEWAY_URL": fake.url,
            "SECRET_KEY": "frontend-unit-secret-0123456789abcdef",
            "TESTING": True,
            "GATEWAY_TIMEOUT": 2.0,
            "GATEWAY_PAGE_BUDGET": 3.0,
            "PAYMENT_TIMEOUT": 2.0,
            "STRIPE_PUBLISHABLE_KEY": None,
        }
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def visitor(app):
    return Visitor(app.test_client())


@pytest.fixture
def other_visitor(app):
    return Visitor(app.test_client())
