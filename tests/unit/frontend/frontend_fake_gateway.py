"""An in-memory fake of the gateway's HTTP API (docs/contract.md), for frontend tests.

It is a real Flask app served on a local port, so the frontend talks to it
over real HTTP exactly as it talks to the real gateway: cookies, Set-Cookie,
status codes, error bodies, timeouts. Knobs on `FakeGatewayState` let a test
make it slow, failing, or let access tokens expire.

Only the services behind the gateway are faked (in memory, with their rules and
messages). What the gateway itself does is the gateway's own code: its cookie
names, body parsing and validation (the request models of
services/common/validation.py), its cross-site guards, id checks, page limit and
error bodies, and the sandbox card processor decides what a card token does.
tests/unit/gateway/test_fake_gateway_contract.py and
tests/e2e/test_fake_gateway_contract.py hold it to the real gateway.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from gateway import guards
from gateway.api.tickets import _limit
from gateway.auth import ACCESS_COOKIE, REFRESH_COOKIE
from gateway.http import DecimalJSONProvider, body, path_id
from services.common.errors import (BadRequest, Conflict, Forbidden, NotAuthorized, NotFound, PaymentDeclined,
                                    ServiceUnavailable, TicketingError)
from services.common.validation import (Credentials, OrderInput, PaymentInput, SigninCredentials, TicketBody,
                                        new_id)
from services.orders.domain import OWN_TICKET, RESERVED
from services.payments.domain import BEING_PAID
from services.payments.processors import CardDeclined, SandboxProcessor
from services.tickets.domain import DEFAULT_PAGE


class FakeGatewayState:
    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.RLock()):
            self.users: dict[str, dict] = {}
            self.access: dict[str, tuple[str, float]] = {}
            self.refresh: dict[str, str] = {}
            self.tickets: dict[str, dict] = {}
            self.orders: dict[str, dict] = {}
            self.payments: dict[str, dict] = {}
            self.created_by_key: dict[tuple[str, str], str] = {}
            self.calls: list[tuple[str, str, str]] = []
            #: the X-Request-ID of each call, in order
            self.request_ids: list[str | None] = []
            self.delay = 0.0
            self.fail_with: int | None = None
            self.access_ttl = 900.0
            self.expiration_window = 900.0
            self.payment_settle_seconds = 0.3

    # -- helpers for tests --------------------------------------------------
    def add_user(self, email, password="secret-pass"):
        user = {"id": new_id(), "email": email.lower(), "password": password}
        self.users[user["id"]] = user
        return user

    def add_ticket(self, user, title="Concert", price="25"):
        ticket = {
            "id": new_id(),
            "title": title,
            "price": Decimal(str(price)),
            "userId": user["id"],
            "version": 0,
            "orderId": None,
        }
        self.tickets[ticket["id"]] = ticket
        return ticket

    def add_order(self, user, ticket, status="created", expires_in=None):
        expires = time.time() + (self.expiration_window if expires_in is None else expires_in)
        order = {
            "id": new_id(),
            "status": status,
            "userId": user["id"],
            "expires": expires,
            "version": 0,
            "ticketId": ticket["id"],
            "settles_at": None,
        }
        self.orders[order["id"]] = order
        if status != "cancelled":
            ticket.update(orderId=order["id"], version=ticket["version"] + 1)
        return order

    def expire_access_tokens(self):
        self.access = {token: (uid, 0.0) for token, (uid, _) in self.access.items()}

    def paths_called(self):
        return [f"{method} {path}" for method, path, _ in self.calls]

    # -- the passing of time ------------------------------------------------
    def settle(self):
        """What the services would have done asynchronously by now."""
        now = time.time()
        for order in self.orders.values():
            if order["status"] == "awaiting:payment" and order["settles_at"] and now >= order["settles_at"]:
                order["status"] = "complete"
                order["version"] += 1
            elif order["status"] == "created" and now >= order["expires"]:
                order["status"] = "cancelled"
                order["version"] += 1
                ticket = self.tickets.get(order["ticketId"])
                if ticket and ticket["orderId"] == order["id"]:
                    ticket["orderId"] = None
                    ticket["version"] += 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(body, status=200, headers=None):
    return Response(
        json.dumps(body, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def create_fake_gateway(state: FakeGatewayState) -> Flask:
    app = Flask("fake_gateway")
    app.json = DecimalJSONProvider(app)  # what gateway.http.body parses with
    processor = SandboxProcessor()

    def ticket_json(t):
        # "sold" goes out only if a test set it: the API's ticket has no such field
        return {k: t[k] for k in ("id", "title", "price", "userId", "version", "orderId", "sold") if k in t}

    def order_json(o):
        t = state.tickets[o["ticketId"]]
        return {
            "id": o["id"],
            "status": o["status"],
            "userId": o["userId"],
            "expiresAt": _iso(o["expires"]),
            "version": o["version"],
            "ticket": {"id": t["id"], "title": t["title"], "price": t["price"]},
        }

    def caller():
        token = request.cookies.get(ACCESS_COOKIE)
        entry = state.access.get(token)
        if not entry or entry[1] < time.time():
            return None
        return state.users.get(entry[0])

    def signed_in_user():
        user = caller()
        if user is None:
            raise NotAuthorized()
        return user

    def signed_in(user, status, payload):
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        state.access[access] = (user["id"], time.time() + state.access_ttl)
        state.refresh[refresh] = user["id"]
        response = _json(payload, status)
        response.set_cookie(ACCESS_COOKIE, access, httponly=True, samesite="Lax", path="/")
        response.set_cookie(REFRESH_COOKIE, refresh, httponly=True, samesite="Lax", path="/", max_age=7 * 86400)
        return response

    def cleared(response):
        for name in (ACCESS_COOKIE, REFRESH_COOKIE):
            response.delete_cookie(name, path="/", httponly=True, samesite="Lax")
        return response

    def own_order(user, order_id):
        order = state.orders.get(path_id(order_id, "Order"))
        if not order:
            raise NotFound("Order not found")
        if order["userId"] != user["id"]:
            raise Forbidden("This order is not yours")
        return order

    @app.errorhandler(TicketingError)
    def ticketing_error(exc):
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return _json({"errors": exc.errors()}, exc.status, headers)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        messages = {404: "Not found", 405: "Method not allowed"}
        return _json({"errors": [{"message": messages.get(exc.code, exc.description or exc.name)}]}, exc.code)

    @app.before_request
    def before():
        state.calls.append((request.method, request.path, request.headers.get("Cookie", "")))
        state.request_ids.append(request.headers.get("X-Request-ID"))
        if state.delay:
            time.sleep(state.delay)
        if state.fail_with == 503:
            raise ServiceUnavailable()
        if state.fail_with:
            return _json({"errors": [{"message": "Something went wrong"}]}, state.fail_with)
        guards.refuse_cross_site_and_non_json()
        state.settle()

    @app.get("/api/healthz")
    def healthz():
        return _json({"status": "ok"})

    @app.post("/api/users/signup")
    def signup():
        data = body(Credentials)
        if any(u["email"] == data.email for u in state.users.values()):
            raise BadRequest("Email in use", field="email")
        user = state.add_user(data.email, data.password)
        return signed_in(user, 201, {"id": user["id"], "email": user["email"]})

    @app.post("/api/users/signin")
    def signin():
        data = body(SigninCredentials)
        email = data.email.lower()
        for user in state.users.values():
            if user["email"] == email and user["password"] == data.password:
                return signed_in(user, 200, {"id": user["id"], "email": user["email"]})
        raise BadRequest("Invalid credentials")

    @app.post("/api/users/signout")
    def signout():
        state.refresh.pop(request.cookies.get(REFRESH_COOKIE), None)
        return cleared(_json({}))

    @app.get("/api/users/currentuser")
    @app.get("/api/users/currentUser")
    def currentuser():
        user = caller()
        return _json({"currentUser": {"id": user["id"], "email": user["email"]} if user else None})

    @app.post("/api/users/refresh")
    def refresh():
        presented = request.cookies.get(REFRESH_COOKIE)
        if not presented:
            raise NotAuthorized()
        user_id = state.refresh.pop(presented, None)
        if not user_id:
            return cleared(_json({"errors": NotAuthorized().errors()}, 401))
        user = state.users[user_id]
        return signed_in(user, 200, {"id": user["id"], "email": user["email"]})

    @app.get("/api/tickets")
    def list_tickets():
        limit = _limit()
        on_sale = [t for t in reversed(list(state.tickets.values())) if t["orderId"] is None]
        cursor = request.args.get("cursor")
        if cursor:
            ids = [t["id"] for t in on_sale]
            if cursor not in ids:
                raise BadRequest("Invalid cursor", field="cursor")
            on_sale = on_sale[ids.index(cursor) + 1 :]
        size = limit or DEFAULT_PAGE
        page, rest = on_sale[:size], on_sale[size:]
        headers = {}
        if rest:
            query = {"cursor": page[-1]["id"], **({"limit": limit} if limit else {})}
            headers["Link"] = f'<{request.base_url}?{urlencode(query)}>; rel="next"'
        return _json([ticket_json(t) for t in page], 200, headers)

    @app.get("/api/tickets/<ticket_id>")
    def get_ticket(ticket_id):
        ticket = state.tickets.get(path_id(ticket_id, "Ticket"))
        if not ticket:
            raise NotFound("Ticket not found")
        return _json(ticket_json(ticket))

    @app.post("/api/tickets")
    def create_ticket():
        user = signed_in_user()
        data = body(TicketBody)
        key = request.headers.get("Idempotency-Key")
        if key and (user["id"], key) in state.created_by_key:  # the gateway's promise: one ticket per key
            return _json(ticket_json(state.tickets[state.created_by_key[(user["id"], key)]]), 201)
        ticket = state.add_ticket(user, data.title, data.price)
        if key:
            state.created_by_key[(user["id"], key)] = ticket["id"]
        return _json(ticket_json(ticket), 201)

    @app.put("/api/tickets/<ticket_id>")
    def update_ticket(ticket_id):
        user = signed_in_user()
        ticket_id = path_id(ticket_id, "Ticket")
        data = body(TicketBody)
        ticket = state.tickets.get(ticket_id)
        if not ticket:
            raise NotFound("Ticket not found")
        if ticket["userId"] != user["id"]:
            raise Forbidden("You do not own this ticket")
        if ticket["orderId"]:
            raise Conflict("Cannot edit a reserved ticket")
        ticket.update(title=data.title, price=data.price, version=ticket["version"] + 1)
        return _json(ticket_json(ticket))

    @app.get("/api/orders")
    def list_orders():
        user = signed_in_user()
        return _json([order_json(o) for o in state.orders.values() if o["userId"] == user["id"]])

    @app.get("/api/orders/<order_id>")
    def get_order(order_id):
        return _json(order_json(own_order(signed_in_user(), order_id)))

    @app.post("/api/orders")
    def create_order():
        user = signed_in_user()
        data = body(OrderInput)
        with state.lock:
            ticket = state.tickets.get(data.ticketId)
            if not ticket:
                raise NotFound("Ticket not found")
            if ticket["userId"] == user["id"]:
                raise Conflict(OWN_TICKET)
            if ticket["orderId"]:
                raise Conflict(RESERVED)
            order = state.add_order(user, ticket)
        return _json(order_json(order), 201)

    @app.delete("/api/orders/<order_id>")
    def cancel_order(order_id):
        order = own_order(signed_in_user(), order_id)
        if order["status"] == "complete":
            raise Conflict("Cannot cancel a completed order")
        if order["status"] == "awaiting:payment":
            raise Conflict(BEING_PAID)
        if order["status"] != "cancelled":
            order.update(status="cancelled", version=order["version"] + 1)
            ticket = state.tickets[order["ticketId"]]
            ticket.update(orderId=None, version=ticket["version"] + 1)
        return Response(status=204)

    @app.post("/api/payments")
    def pay():
        user = signed_in_user()
        data = body(PaymentInput)
        with state.lock:
            order = own_order(user, data.orderId)
            if any(p["orderId"] == order["id"] for p in state.payments.values()):
                raise Conflict("Order is already paid")
            if order["status"] == "cancelled":
                raise Conflict("Order is cancelled")
            if order["status"] == "complete":
                raise Conflict("Order is already paid")
            if order["status"] == "awaiting:payment":
                raise Conflict(BEING_PAID)
            if order["expires"] <= time.time():
                raise Conflict("Order has expired")
            try:
                processor.charge(amount_cents=int(state.tickets[order["ticketId"]]["price"] * 100), currency="usd",
                                 token=data.token.strip(), idempotency_key=new_id())
            except CardDeclined as declined:
                order["version"] += 2  # held for the charge, released after the decline
                raise PaymentDeclined(declined.message, field="token") from None
            order.update(status="awaiting:payment", version=order["version"] + 1,
                         settles_at=time.time() + state.payment_settle_seconds)
            payment = {"id": new_id(), "orderId": order["id"]}
            state.payments[payment["id"]] = payment
        return _json({"id": payment["id"]}, 201)

    return app


class ServedApp:
    """A WSGI app served on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, wsgi_app, port=0):
        self.server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def one_origin(frontend_app, gateway_app):
    """/api/* to the gateway, the rest to the frontend: what `ticketing up` does."""

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = gateway_app if path == "/api" or path.startswith("/api/") else frontend_app
        return target(environ, start_response)

    return dispatch


def main(argv=None):
    """Serve the frontend in front of this fake on one origin, for working on the pages:

        .venv/bin/python -m tests.unit.frontend.frontend_fake_gateway --port 8099
    """
    import argparse

    from frontend.app import create_app

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--expiration-window", type=float, default=900)
    args = parser.parse_args(argv)
    state = FakeGatewayState()
    state.expiration_window = args.expiration_window
    url = f"http://127.0.0.1:{args.port}"
    frontend = create_app({"GATEWAY_URL": url, "SECRET_KEY": "frontend-unit-secret-0123456789abcdef"})
    server = make_server("127.0.0.1", args.port, one_origin(frontend, create_fake_gateway(state)), threaded=True)
    print(f"frontend + fake gateway on {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
