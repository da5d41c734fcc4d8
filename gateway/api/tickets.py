"""/api/tickets: list on sale (paged), show, create, update."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel

from services.common.errors import BadRequest
from services.common.validation import Money, TicketBody

from ..auth import require_user
from ..http import body, path_id, present_ticket, request_id

bp = Blueprint("tickets", __name__, url_prefix="/api/tickets")

MAX_LIMIT = 100


class Ticket(BaseModel):
    """A ticket, as the tickets service's ``Ticket.to_dict`` gives it (the price here a JSON number)."""
    id: str
    title: str
    price: Money
    userId: str  # noqa: N815 - the JSON names
    version: int
    orderId: str | None  # noqa: N815


def _limit() -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return None
    # isdigit() alone lets "²" through, which int() then refuses: ASCII digits only
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"Limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


@bp.get("")
def list_tickets():
    limit = _limit()
    with current_app.rpc.client() as rpc:
        page = rpc.tickets.list_tickets(limit, request.args.get("cursor") or None)
    response = jsonify([present_ticket(t) for t in page["tickets"]])
    if page["next"]:
        query = {"cursor": page["next"], **({"limit": limit} if limit else {})}
        response.headers["Link"] = f'<{request.base_url}?{urlencode(query)}>; rel="next"'
    return response


@bp.get("/<ticket_id>")
def show_ticket(ticket_id):
    with current_app.rpc.client() as rpc:
        ticket = rpc.tickets.get_ticket(path_id(ticket_id, "Ticket"))
    return jsonify(present_ticket(ticket))


@bp.post("")
@require_user
def create_ticket(user):
    data = body(TicketBody)
    with current_app.rpc.client() as rpc:
        ticket = rpc.tickets.create_user_ticket(user["id"], data.title, str(data.price), request_id(user["id"]))
    return jsonify(present_ticket(ticket)), 201


@bp.put("/<ticket_id>")
@require_user
def update_ticket(user, ticket_id):
    ticket_id = path_id(ticket_id, "Ticket")
    data = body(TicketBody)
    with current_app.rpc.client() as rpc:
        ticket = rpc.tickets.update_user_ticket(user["id"], ticket_id, data.title, str(data.price))
    return jsonify(present_ticket(ticket))
