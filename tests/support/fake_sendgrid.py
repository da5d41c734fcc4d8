"""A fake SendGrid v3 API on a local port: ``POST /v3/mail/send``, recorded, and told to fail at will.

Point the official library at it (``SENDGRID_HOST=fake.url``). ``fail_next(n,
status)`` fails the next n sends, ``fail_always(status)`` fails until
``recover()``; ``delay`` slows every answer (a long one makes the client time
out). ``mails`` holds the accepted ones (the JSON body, with the message id
the fake returned in ``X-Message-Id``); ``requests`` every request.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSendGrid:
    def __init__(self):
        self.requests: list[dict] = []
        self.mails: list[dict] = []
        self.delay = 0.0
        self._failures: list[int] = []
        self._always: int | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.mails.clear()
            self._failures.clear()
            self._always = None
            self.delay = 0.0

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def fail_always(self, status: int = 503) -> None:
        self._always = status

    def recover(self) -> None:
        with self._lock:
            self._always = None
            self._failures.clear()

    def mails_for(self, order_id: str) -> list[dict]:
        return [m for m in self.mails if m.get("custom_args", {}).get("order_id") == order_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, method: str, path: str, headers: dict, body: dict | None) -> tuple[int, dict | None, dict]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            failure = self._failures.pop(0) if self._failures else self._always
        if self.delay:
            time.sleep(self.delay)
        if failure:
            return failure, {"errors": [{"message": "Fake SendGrid was told to fail", "field": None}]}, {}
        if not headers.get("authorization", "").startswith("Bearer SG."):
            return 401, {"errors": [{"message": "The provided authorization grant is invalid", "field": None}]}, {}
        if (method, path) != ("POST", "/v3/mail/send"):
            return 404, {"errors": [{"message": "Not found", "field": None}]}, {}
        if not body or not body.get("personalizations") or not body.get("from") or not body.get("content"):
            return 400, {"errors": [{"message": "Bad request", "field": None}]}, {}
        message_id = uuid.uuid4().hex[:22]
        with self._lock:
            self.mails.append({**body, "message_id": message_id})
        return 202, None, {"X-Message-Id": message_id}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer, extra = fake._answer(self.command, self.path.split("?")[0], headers, body)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        return Handler
