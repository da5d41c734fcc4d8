"""/api/orders: the caller's orders (list, show), reserve a ticket, cancel."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from services.common.validation import IdOf, Input

from ..auth import require_user
from ..http import body, path_id, present_order

bp = Blueprint("orders", __name__, url_prefix="/api/orders")


class OrderBody(Input):
    ticketId: IdOf("ticketId")  # noqa: N815 - the JSON name


@bp.get("")
@require_user
def list_orders(user):
    with current_app.rpc.client() as rpc:
        orders = rpc.orders.list_user_orders(user["id"])
    return jsonify([present_order(order) for order in orders])


@bp.get("/<order_id>")
@require_user
def show_order(user, order_id):
    order_id = path_id(order_id, "Order")
    with current_app.rpc.client() as rpc:
        order = rpc.orders.get_user_order(user["id"], order_id)
    return jsonify(present_order(order))


@bp.post("")
@require_user
def create_order(user):
    data = body(OrderBody)
    with current_app.rpc.client() as rpc:
        order = rpc.orders.create_order(user["id"], user["email"], data.ticketId)
    return jsonify(present_order(order)), 201


@bp.delete("/<order_id>")
@require_user
def cancel_order(user, order_id):
    order_id = path_id(order_id, "Order")
    with current_app.rpc.client() as rpc:
        rpc.orders.cancel_user_order(user["id"], order_id)
    return "", 204
