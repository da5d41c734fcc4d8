"""RPC deadlines and infrastructure errors, through a real broker and a real nameko container."""
import time

import pytest
from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import exc as sa_exc

from services.common.errors import ServiceUnavailable
from services.common.rpc import ServiceRpc, rpc

pytestmark = pytest.mark.integration


class Echo:
    name = "echo"
    ran: list = []

    @rpc
    def say(self, word):
        Echo.ran.append(word)
        return word

    @rpc
    def lose_database(self):
        raise sa_exc.OperationalError("SELECT 1", {}, Exception("terminating connection due to administrator command"))

    @rpc
    def nap(self, seconds):
        time.sleep(seconds)
        return "awake"


class Caller:
    name = "caller"
    echo = ServiceRpc("echo", timeout=0.5)

    @rpc
    def ask_nap(self, seconds):
        return self.echo.nap(seconds)


@pytest.fixture
def services(container_factory, rabbit_config):
    Echo.ran = []
    config = {**rabbit_config, "serializer": "json"}
    for cls in (Echo, Caller):
        container_factory(cls, config).start()
    return config


def test_a_request_whose_caller_gave_up_is_dropped_not_run(services):
    with ServiceRpcProxy("echo", services, context_data={"deadline": time.time() - 1}, timeout=1) as late:
        with pytest.raises(RpcTimeout):
            late.say("late")
    with ServiceRpcProxy("echo", services, context_data={"deadline": time.time() + 5}) as on_time:
        assert on_time.say("on time") == "on time"
    assert Echo.ran == ["on time"]


def test_a_lost_database_connection_answers_unavailable(services):
    with ServiceRpcProxy("echo", services) as echo:
        with pytest.raises(ServiceUnavailable):
            echo.lose_database()


def test_an_internal_call_gives_up_at_its_timeout_and_passes_its_deadline_on(services):
    with ServiceRpcProxy("caller", services) as caller:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            caller.ask_nap(2)
        assert time.monotonic() - started < 1.5
        assert caller.ask_nap(0) == "awake"
