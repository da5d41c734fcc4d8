"""/api/orders: the caller's orders (list, show), reserve a ticket, cancel."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from services.common.validation import Money, OrderInput

from ..auth import require_user
from ..http import body, path_id, present_order

bp = Blueprint("orders", __name__, url_prefix="/api/orders")


class OrderTicket(BaseModel):
    """The ticket of an order: its title now, the price it had when it was reserved."""
    id: str
    title: str
    price: Money


class Order(BaseModel):
    """An order, as the orders service's ``Order.to_dict`` gives it."""
    id: str
    status: Literal["created", "awaiting:payment", "complete", "cancelled"]
    userId: str  # noqa: N815 - the JSON names
    expiresAt: datetime  # noqa: N815
    version: int
    ticket: OrderTicket


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
    data = body(OrderInput)
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
