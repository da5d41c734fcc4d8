"""A TCP proxy to put between a component and RabbitMQ, to cut the broker away and bring it back.

The machine's RabbitMQ is shared, so tests never stop it: they point the
component at ``proxy.port`` and call :meth:`TcpProxy.cut` (every connection
through it closes, new ones are closed at once) and :meth:`TcpProxy.restore`.

In the test process (``TcpProxy()``) or in a process of its own, driven by signals
(what the fault suite does, :class:`ProxyProcess`)::

    python -m tests.support.tcp_proxy LISTEN_PORT [UPSTREAM_HOST UPSTREAM_PORT]

SIGUSR1 cuts, SIGUSR2 restores, SIGTERM ends it. Plain threads; the listening
socket stays open while cut (closing a socket another green thread waits on
confuses eventlet's hub, and the test process is monkey-patched).
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BROKER = ("127.0.0.1", 5672)
ROOT = Path(__file__).parents[2]


class TcpProxy:
    def __init__(self, target: tuple[str, int] = BROKER, port: int = 0):
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def _accept_forever(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self.open:  # cut while connecting: this one must not get through either
                    _close(client)
                    _close(upstream)
                    continue
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, EOFError):  # eventlet's green sockets raise EOFError once closed
            pass
        for sock in (source, sink):
            _shut(sock)
        with self._lock:
            self._sockets.discard(source)

    def cut(self) -> None:
        """The broker is gone: close what is connected and refuse what comes."""
        with self._lock:
            self.open = False
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


class ProxyProcess:
    """A :class:`TcpProxy` in a process of its own, cut and restored by signals."""

    def __init__(self, port: int, upstream: tuple[str, int] = BROKER):
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.tcp_proxy", str(port), upstream[0], str(upstream[1])],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def cut(self) -> None:
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)

    def restore(self) -> None:
        self.process.send_signal(signal.SIGUSR2)
        time.sleep(0.2)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    _shut(sock)
    try:
        sock.close()
    except OSError:
        pass


def main() -> None:
    port = int(sys.argv[1])
    upstream = (sys.argv[2], int(sys.argv[3])) if len(sys.argv) > 3 else BROKER
    proxy = TcpProxy(upstream, port)
    signal.signal(signal.SIGUSR1, lambda *_: proxy.cut())
    signal.signal(signal.SIGUSR2, lambda *_: proxy.restore())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(0.5):
        pass
    proxy.close()


if __name__ == "__main__":
    main()
