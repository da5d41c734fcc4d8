"""The cluster test starts three RabbitMQ nodes and a dozen processes: it runs only when asked
(``make cluster-test``, which sets TICKETING_CLUSTER_TEST=1), never in the default suite."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TICKETING_CLUSTER_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="a 3-node RabbitMQ cluster test: run it with `make cluster-test`")
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
