"""A throwaway 3-node RabbitMQ cluster on this machine, for the node-loss test.

Each node is a separate ``rabbitmq-server`` (Debian's package, 3.10+) with its
own node name, AMQP, distribution and management ports, data and log
directories, config and plugins file, all under one temporary directory, and
the same Erlang cookie (a shared ``HOME``). Nothing of the machine's own broker
is read or touched: the node names differ, the environment file is our own,
and :meth:`LocalCluster.close` stops every node it started and deletes the
directory.

    with LocalCluster(size=3) as cluster:
        cluster.amqp_uris        # ["amqp://guest:guest@127.0.0.1:<port>", ...] one per node
        cluster.stop_node(1); cluster.start_node(1)
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from services.common.net import free_port

SERVER = os.environ.get("RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = os.environ.get("RABBITMQCTL", "/usr/lib/rabbitmq/bin/rabbitmqctl")
START_TIMEOUT = 90


class Node:
    def __init__(self, root: Path, index: int, prefix: str):
        self.index = index
        self.name = f"{prefix}-{index}@localhost"
        self.amqp_port, self.dist_port, self.management_port = free_port(), free_port(), free_port()
        self.dir = root / f"node{index}"
        self.dir.mkdir()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.amqp_port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n"
            # a tiny test cluster on a shared machine: don't refuse publishers over disk space
            "disk_free_limit.absolute = 50MB\n"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq one
        self.env = {
            **os.environ,
            "HOME": str(root),  # the shared .erlang.cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.env.pop("ERL_FLAGS", None)
        self.process: subprocess.Popen | None = None

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run([CTL, "-n", self.name, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.name} {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> None:
        log = (self.dir / "server.out").open("a")
        self.process = subprocess.Popen([SERVER], env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.wait_running()

    def wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(self.dir / 'server.out').read_text()[-3000:]}")
            try:
                self.ctl("await_startup", "--timeout", "10", timeout=40)
                return
            except Exception:  # not up yet, or the CLI itself was slow (eventlet has its own TimeoutExpired)
                time.sleep(1)
        raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT}s")

    def stop(self) -> None:
        """A clean stop of the whole node (its Erlang VM exits); its data stays for :meth:`start`."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctl("stop", timeout=60)
        except Exception:  # the CLI failed or hung: a SIGTERM stops the node cleanly too
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except Exception:  # subprocess's or eventlet's TimeoutExpired
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


class LocalCluster:
    def __init__(self, size: int = 3, prefix: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="ticketing-rabbit-cluster-"))
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        prefix = prefix or f"ticketing-t{os.getpid()}"
        self.nodes = [Node(self.root, i, prefix) for i in range(1, size + 1)]

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        first, *others = self.nodes
        first.start()
        for node in others:
            node.start()
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        running = self.running_nodes(first)
        if sorted(running) != sorted(n.name for n in self.nodes):
            raise RuntimeError(f"cluster formed with {running}")

    def running_nodes(self, via: Node) -> list[str]:
        response = requests.get(f"{via.management_url}/api/nodes", auth=("guest", "guest"), timeout=10)
        response.raise_for_status()
        return [n["name"] for n in response.json() if n.get("running")]

    @property
    def amqp_uris(self) -> list[str]:
        return [node.amqp_uri for node in self.nodes]

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()

    def close(self) -> None:
        for node in reversed(self.nodes):
            try:
                node.stop()
            finally:
                node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
