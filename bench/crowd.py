"""A crowd of HTTP clients: idle keep-alive connections and buyers who all send at once.

Plain sockets and threads, so it runs as OS threads in the benchmark and as
green threads under eventlet's monkey patching in the test suite. Every client
speaks just enough HTTP/1.1 to send one request and read one response
(``Content-Length`` bodies, which is what the gateway sends).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    status: int | None = None  # None: no HTTP answer (see error)
    error: str | None = None   # e.g. ConnectionResetError, timeout
    seconds: float = 0.0       # from sending the request to the end of the answer
    headers: dict = field(default_factory=dict)
    body: bytes = b""


def build_request(host: str, method: str, path: str, body=None, headers: dict | None = None,
                  keep_alive: bool = False) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def _error_name(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, (socket.timeout, TimeoutError)) else type(exc).__name__


class IdleConnections:
    """``n`` clients that each make one keep-alive request and then sit on the open connection."""

    def __init__(self, host: str, port: int, n: int, path: str = "/api/healthz", timeout: float = 30.0):
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.sockets: list[socket.socket] = []
        self.errors: dict[str, int] = {}
        lock = threading.Lock()

        def open_one():
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
                sock.sendall(build_request(host, "GET", path, keep_alive=True))
                read_response(sock)
            except Exception as exc:
                with lock:
                    self.errors[_error_name(exc)] = self.errors.get(_error_name(exc), 0) + 1
                return
            with lock:
                self.sockets.append(sock)

        _run_all([open_one] * n)

    def still_open(self) -> int:
        """How many of the connections still get an HTTP answer (the server kept them alive; 503 counts)."""
        answered = []

        def ask(sock):
            try:
                sock.sendall(build_request(self.host, "GET", self.path, keep_alive=True))
                status, _h, _b = read_response(sock)
                answered.append(status in (200, 503))
            except Exception as exc:
                answered.append(False)
                self.errors[_error_name(exc)] = self.errors.get(_error_name(exc), 0) + 1

        _run_all([lambda s=s: ask(s) for s in self.sockets])
        return sum(answered)

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.sockets.clear()


def rush(host: str, port: int, requests: list[bytes], timeout: float = 30.0) -> list[Outcome]:
    """Connect every client first, then let them all send at the same moment; one Outcome each."""
    outcomes = [Outcome() for _ in requests]
    barrier = threading.Barrier(len(requests) + 1)

    def client(i: int):
        outcome, sock = outcomes[i], None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except Exception as exc:
            outcome.error = _error_name(exc)
        try:
            barrier.wait(timeout=timeout)
        except threading.BrokenBarrierError:
            pass
        if sock is None:
            return
        began = time.perf_counter()
        try:
            sock.sendall(requests[i])
            outcome.status, outcome.headers, outcome.body = read_response(sock)
        except Exception as exc:
            outcome.error = _error_name(exc)
        finally:
            outcome.seconds = time.perf_counter() - began
            sock.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=timeout)
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(timeout + 5)
    return outcomes


def summary(outcomes: list[Outcome]) -> dict:
    """Status counts, connection errors and latency percentiles of a rush."""
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status is None:
            errors[outcome.error or "unknown"] = errors.get(outcome.error or "unknown", 0) + 1
        else:
            statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    times = sorted(o.seconds for o in outcomes if o.status is not None)
    return {"requests": len(outcomes), "statuses": dict(sorted(statuses.items())), "errors": errors,
            "p50_s": percentile(times, 50), "p99_s": percentile(times, 99), "max_s": times[-1] if times else None}


def percentile(ordered: list[float], p: float):
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _run_all(tasks) -> None:
    threads = [threading.Thread(target=task, daemon=True) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
