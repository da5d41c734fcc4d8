"""A fake Stripe API on a local port: ``POST /v1/charges`` as the real one answers it, recorded.

Point the official library at it (``STRIPE_API_BASE=fake.url``). It behaves
like Stripe where our code depends on it:

* test tokens: ``tok_visa`` (and the other paying test cards) succeed,
  ``tok_chargeDeclined*`` answer 402 ``card_error`` with Stripe's message,
  anything else 400 ``invalid_request_error`` "No such token";
* idempotency: a repeated ``Idempotency-Key`` with the same parameters gets the
  first answer again (``Idempotent-Replayed: true``) and creates nothing; with
  other parameters, 400 ``idempotency_error``;
* ``fail_next(n, status)`` makes the next n requests fail (5xx: the library
  retries them), ``delay`` slows every answer (to widen races).

``requests`` holds every request (method, path, headers, form); ``charges``
the charges it really created, ``refunds`` the refunds (``POST /v1/refunds``).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

PAYING = {"tok_visa", "tok_visa_debit", "tok_mastercard", "tok_mastercard_debit", "tok_amex", "tok_discover"}
DECLINES = {
    "tok_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "tok_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "tok_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that was killed mid-request
            super().handle_error(request, client_address)


class FakeStripe:
    def __init__(self):
        self.requests: list[dict] = []
        self.charges: list[dict] = []
        self.refunds: list[dict] = []
        self.delay = 0.0
        self._failures: list[int] = []
        self._idempotent: dict[str, tuple[dict, int, dict]] = {}
        self._lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- test controls ---------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.charges.clear()
            self.refunds.clear()
            self._failures.clear()
            self._idempotent.clear()
            self.delay = 0.0

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def charges_for(self, order_id: str) -> list[dict]:
        return [c for c in self.charges if c["metadata"].get("order_id") == order_id]

    def charge_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/v1/charges"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API ---------------------------------------------------------------
    def _answer(self, method: str, path: str, headers: dict, form: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "form": form})
            failure = self._failures.pop(0) if self._failures else None
        if self.delay:
            time.sleep(self.delay)
        if failure:
            return failure, {"error": {"type": "api_error", "message": "Fake Stripe was told to fail"}}, {}
        if not headers.get("authorization", "").startswith("Bearer sk_"):
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, {}
        if (method, path) not in (("POST", "/v1/charges"), ("POST", "/v1/refunds")):
            return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}}, {}
        key = headers.get("idempotency-key")
        with self._lock:  # one request per key at a time, as Stripe does
            if key and key in self._idempotent:
                first_form, status, body = self._idempotent[key]
                if first_form != form:
                    return 400, {"error": {"type": "idempotency_error", "message":
                                           "Keys for idempotent requests can only be used with the same "
                                           "parameters they were first used with."}}, {}
                return status, body, {"Idempotent-Replayed": "true"}
            status, body = self._charge(form) if path == "/v1/charges" else self._refund(form)
            if key:
                self._idempotent[key] = (form, status, body)
            return status, body, {}

    def _charge(self, form: dict) -> tuple[int, dict]:
        token = form.get("source", "")
        if token in DECLINES:
            code, decline_code, message = DECLINES[token]
            charge_id = "ch_" + uuid.uuid4().hex[:24]
            return 402, {"error": {"type": "card_error", "code": code, "decline_code": decline_code,
                                   "message": message, "charge": charge_id, "param": ""}}
        if token not in PAYING:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "source",
                                   "message": f"No such token: '{token}'"}}
        metadata = {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")}
        charge = {"id": "ch_" + uuid.uuid4().hex[:24], "object": "charge", "amount": int(form["amount"]),
                  "currency": form.get("currency"), "status": "succeeded", "paid": True, "captured": True,
                  "source": {"id": "card_" + uuid.uuid4().hex[:16], "object": "card"},
                  "description": form.get("description"), "metadata": metadata, "livemode": False,
                  "created": int(time.time())}
        self.charges.append(charge)
        return 200, charge

    def _refund(self, form: dict) -> tuple[int, dict]:
        charge = next((c for c in self.charges if c["id"] == form.get("charge")), None)
        if charge is None:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "charge",
                                   "message": f"No such charge: '{form.get('charge')}'"}}
        amount = int(form.get("amount") or charge["amount"])
        refund = {"id": "re_" + uuid.uuid4().hex[:24], "object": "refund", "amount": amount,
                  "charge": charge["id"], "currency": charge["currency"], "status": "succeeded"}
        self.refunds.append(refund)
        return 200, refund

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                form = dict(parse_qsl(raw, keep_blank_values=True))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra = fake._answer(self.command, self.path.split("?")[0], headers, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_" + uuid.uuid4().hex[:14])
                if status >= 500:
                    self.send_header("Stripe-Should-Retry", "true")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        return Handler
