import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "integration: needs the local RabbitMQ and PostgreSQL (rabbitmqctl, psql as postgres on 127.0.0.1)",
    )


@pytest.fixture(scope="session")
def components():
    """The components `ticketing run` accepts (ticketing.cli.COMPONENTS)."""
    from .support import cli_components

    return cli_components()
