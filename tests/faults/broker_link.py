"""A TCP proxy to RabbitMQ that can be cut and restored by signals, in a process of its own.

    python -m tests.faults.broker_link LISTEN_PORT [UPSTREAM_HOST UPSTREAM_PORT]

SIGUSR1 cuts the link (every connection through it is closed and new ones are
refused: for the app, the broker is gone); SIGUSR2 restores it; SIGTERM ends it.
Plain threads, no eventlet (the test process is monkey-patched, and closing a
socket another green thread waits on confuses eventlet's hub).
"""
from __future__ import annotations

import signal
import socket
import sys
import threading


class Link:
    def __init__(self, port: int, upstream: tuple[str, int]):
        self.port, self.upstream = port, upstream
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None

    def restore(self) -> None:
        with self.lock:
            if self.listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self.listener = listener
        threading.Thread(target=self.accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = list(self.sockets), set()
        if listener is not None:
            shut(listener)
        for sock in sockets:
            shut(sock)

    def accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                break
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                shut(client)
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    for sock in (client, server):
                        shut(sock)
                        sock.close()
                    continue
                self.sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(source, target), daemon=True).start()
        listener.close()

    def pump(self, source, target) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        shut(target)
        with self.lock:
            self.sockets.discard(source)
        try:
            source.close()
        except OSError:
            pass


def shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def main() -> None:
    port = int(sys.argv[1])
    upstream = (sys.argv[2], int(sys.argv[3])) if len(sys.argv) > 3 else ("127.0.0.1", 5672)
    link = Link(port, upstream)
    signal.signal(signal.SIGUSR1, lambda *_: link.cut())
    signal.signal(signal.SIGUSR2, lambda *_: link.restore())
    link.restore()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


if __name__ == "__main__":
    main()
