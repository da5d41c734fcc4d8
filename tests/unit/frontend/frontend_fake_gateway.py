"""An in-memory fake of the gateway's HTTP API (README, "Architecture" and gateway/openapi.py), for frontend tests.

It is a real Flask app served on a local port, so the frontend talks to it
over real HTTP exactly as it talks to the real gateway: cookies, Set-Cookie,
status codes, error bodies, timeouts. Knobs on `FakeGatewayState` let a test
make it slow, failing, or let access tokens expire.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

from flask import Flask, Response, request
from werkzeug.serving import make_server

ACCESS_COOKIE = "access_token"
REFRESH_COOKIE = "refresh_token"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
            self.delay = 0.0
            self.fail_with: int | None = None
            self.access_ttl = 900.0
            self.expiration_window = 900.0
            self.payment_settle_seconds = 0.3
            self.serial = 0

    # -- helpers for tests --------------------------------------------------
    def new_id(self) -> str:
        self.serial += 1
        return f"{self.serial:04d}{secrets.token_hex(8)}"

    def add_user(self, email, password="secret"):
        user = {"id": self.new_id(), "email": email.lower(), "password": password}
        self.users[user["id"]] = user
        return user

    def add_ticket(self, user, title="Concert", price="25"):
        ticket = {
            "id": self.new_id(),
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
            "id": self.new_id(),
            "status": status,
            "userId": user["id"],
            "expires": expires,
            "version": 0,
            "ticketId": ticket["id"],
            "settles_at": None,
        }
        self.orders[order["id"]] = order
        if status != "cancelled":
            ticket["orderId"] = order["id"]
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


def _errors(status, *errors):
    return _json({"errors": [dict(e) for e in errors]}, status)


def _err(message, field=None):
    return {"message": message, **({"field": field} if field else {})}


def create_fake_gateway(state: FakeGatewayState) -> Flask:
    app = Flask("fake_gateway")

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

    def body():
        try:
            data = json.loads(request.get_data() or b"{}", parse_float=Decimal)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def caller():
        token = request.cookies.get(ACCESS_COOKIE)
        entry = state.access.get(token)
        if not entry or entry[1] < time.time():
            return None
        return state.users.get(entry[0])

    def signed_in(user, status, payload):
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        state.access[access] = (user["id"], time.time() + state.access_ttl)
        state.refresh[refresh] = user["id"]
        response = _json(payload, status)
        response.set_cookie(ACCESS_COOKIE, access, httponly=True, samesite="Lax", path="/")
        response.set_cookie(REFRESH_COOKIE, refresh, httponly=True, samesite="Lax", path="/", max_age=7 * 86400)
        return response

    def cleared(response):
        response.delete_cookie(ACCESS_COOKIE, path="/")
        response.delete_cookie(REFRESH_COOKIE, path="/")
        return response

    def validate_ticket(data):
        errors = []
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            errors.append(_err("Title is required", "title"))
        elif len(title.strip()) > 200:
            errors.append(_err("Title must be at most 200 characters", "title"))
        price = data.get("price")
        if isinstance(price, bool) or not isinstance(price, (int, Decimal)):
            errors.append(_err("Price must be a number", "price"))
        else:
            price = Decimal(price)
            if price <= 0:
                errors.append(_err("Price must be greater than 0", "price"))
            elif price > 1_000_000:
                errors.append(_err("Price must be at most 1,000,000", "price"))
            elif price.as_tuple().exponent < -2:
                errors.append(_err("Price must have at most 2 decimals", "price"))
        return errors

    @app.before_request
    def before():
        state.calls.append((request.method, request.path, request.headers.get("Cookie", "")))
        if state.delay:
            time.sleep(state.delay)
        if state.fail_with:
            return _errors(state.fail_with, _err("Internal error"))
        state.settle()

    @app.get("/api/healthz")
    def healthz():
        return _json({"status": "ok"})

    @app.post("/api/users/signup")
    def signup():
        data = body() or {}
        email = str(data.get("email") or "").strip().lower()
        password = str(data.get("password") or "").strip()
        errors = []
        if not EMAIL.match(email):
            errors.append(_err("Email must be valid", "email"))
        if not 4 <= len(password) <= 20:
            errors.append(_err("Password must be between 4 and 20 characters", "password"))
        if errors:
            return _errors(400, *errors)
        if any(u["email"] == email for u in state.users.values()):
            return _errors(400, _err("Email in use", "email"))
        user = state.add_user(email, password)
        return signed_in(user, 201, {"id": user["id"], "email": user["email"]})

    @app.post("/api/users/signin")
    def signin():
        data = body() or {}
        email = str(data.get("email") or "").strip().lower()
        password = str(data.get("password") or "").strip()
        for user in state.users.values():
            if user["email"] == email and user["password"] == password:
                return signed_in(user, 200, {"id": user["id"], "email": user["email"]})
        return _errors(400, _err("Invalid credentials"))

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
        user_id = state.refresh.pop(request.cookies.get(REFRESH_COOKIE), None)
        if not user_id:
            return cleared(_errors(401, _err("Not signed in")))
        user = state.users[user_id]
        return signed_in(user, 200, {"id": user["id"], "email": user["email"]})

    @app.get("/api/tickets")
    def list_tickets():
        on_sale = [t for t in reversed(list(state.tickets.values())) if t["orderId"] is None]
        try:
            limit = int(request.args.get("limit", 20))
        except ValueError:
            return _errors(400, _err("limit must be a number", "limit"))
        cursor = request.args.get("cursor")
        if cursor:
            ids = [t["id"] for t in on_sale]
            if cursor not in ids:
                return _errors(400, _err("Invalid cursor", "cursor"))
            on_sale = on_sale[ids.index(cursor) + 1 :]
        page, rest = on_sale[:limit], on_sale[limit:]
        headers = {}
        if rest:
            headers["Link"] = f'</api/tickets?limit={limit}&cursor={page[-1]["id"]}>; rel="next"'
        return _json([ticket_json(t) for t in page], 200, headers)

    @app.get("/api/tickets/<ticket_id>")
    def get_ticket(ticket_id):
        ticket = state.tickets.get(ticket_id)
        if not ticket:
            return _errors(404, _err("Not found"))
        return _json(ticket_json(ticket))

    @app.post("/api/tickets")
    def create_ticket():
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        data = body()
        if data is None:
            return _errors(400, _err("Body must be a JSON object"))
        errors = validate_ticket(data)
        if errors:
            return _errors(400, *errors)
        key = request.headers.get("Idempotency-Key")
        if key and (user["id"], key) in state.created_by_key:  # the gateway's promise: one ticket per key
            return _json(ticket_json(state.tickets[state.created_by_key[(user["id"], key)]]), 201)
        ticket = state.add_ticket(user, data["title"].strip(), data["price"])
        if key:
            state.created_by_key[(user["id"], key)] = ticket["id"]
        return _json(ticket_json(ticket), 201)

    @app.put("/api/tickets/<ticket_id>")
    def update_ticket(ticket_id):
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        ticket = state.tickets.get(ticket_id)
        if not ticket:
            return _errors(404, _err("Not found"))
        if ticket["userId"] != user["id"]:
            return _errors(403, _err("Not authorized"))
        if ticket["orderId"]:
            return _errors(409, _err("Cannot edit a reserved ticket"))
        data = body() or {}
        errors = validate_ticket(data)
        if errors:
            return _errors(400, *errors)
        ticket.update(title=data["title"].strip(), price=Decimal(data["price"]), version=ticket["version"] + 1)
        return _json(ticket_json(ticket))

    @app.get("/api/orders")
    def list_orders():
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        return _json([order_json(o) for o in state.orders.values() if o["userId"] == user["id"]])

    @app.get("/api/orders/<order_id>")
    def get_order(order_id):
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        order = state.orders.get(order_id)
        if not order:
            return _errors(404, _err("Not found"))
        if order["userId"] != user["id"]:
            return _errors(403, _err("Not authorized"))
        return _json(order_json(order))

    @app.post("/api/orders")
    def create_order():
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        data = body() or {}
        ticket_id = data.get("ticketId")
        if not isinstance(ticket_id, str) or not ticket_id:
            return _errors(400, _err("ticketId must be provided", "ticketId"))
        with state.lock:
            ticket = state.tickets.get(ticket_id)
            if not ticket:
                return _errors(404, _err("Not found"))
            if ticket["userId"] == user["id"]:
                return _errors(409, _err("You cannot buy your own ticket"))
            if ticket["orderId"]:
                return _errors(409, _err("Ticket is already reserved"))
            order = state.add_order(user, ticket)
        return _json(order_json(order), 201)

    @app.delete("/api/orders/<order_id>")
    def cancel_order(order_id):
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        order = state.orders.get(order_id)
        if not order:
            return _errors(404, _err("Not found"))
        if order["userId"] != user["id"]:
            return _errors(403, _err("Not authorized"))
        if order["status"] in ("complete", "awaiting:payment"):
            return _errors(409, _err("Cannot cancel a paid order"))
        if order["status"] != "cancelled":
            order.update(status="cancelled", version=order["version"] + 1)
            state.tickets[order["ticketId"]]["orderId"] = None
        return Response(status=204)

    @app.post("/api/payments")
    def pay():
        user = caller()
        if not user:
            return _errors(401, _err("Not signed in"))
        data = body() or {}
        errors = []
        if not isinstance(data.get("token"), str) or not data.get("token"):
            errors.append(_err("token must be provided", "token"))
        if not isinstance(data.get("orderId"), str) or not data.get("orderId"):
            errors.append(_err("orderId must be provided", "orderId"))
        if errors:
            return _errors(400, *errors)
        with state.lock:
            order = state.orders.get(data["orderId"])
            if not order:
                return _errors(404, _err("Not found"))
            if order["userId"] != user["id"]:
                return _errors(403, _err("Not authorized"))
            if order["status"] == "cancelled":
                return _errors(409, _err("Cannot pay for a cancelled order"))
            if order["status"] in ("complete", "awaiting:payment"):
                return _errors(409, _err("This order is already paid"))
            if data["token"] == "tok_chargeDeclined":
                return _errors(402, _err("Your card was declined."))
            if data["token"] not in ("tok_visa",) and not data["token"].startswith("tok_"):
                return _errors(400, _err("Invalid card token", "token"))
            order.update(status="awaiting:payment", settles_at=time.time() + state.payment_settle_seconds)
            payment = {"id": state.new_id(), "orderId": order["id"]}
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
    frontend = create_app({"GATEWAY_URL": url, "SECRET_KEY": "fake-gateway-dev"})
    server = make_server("127.0.0.1", args.port, one_origin(frontend, create_fake_gateway(state)), threaded=True)
    print(f"frontend + fake gateway on {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
