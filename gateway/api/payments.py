"""/api/payments: pay for an order by card."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from services.common.validation import PaymentInput

from ..auth import require_user
from ..http import body, request_id

bp = Blueprint("payments", __name__, url_prefix="/api/payments")


class Payment(BaseModel):
    id: str


@bp.post("")
@require_user
def create_payment(user):
    data = body(PaymentInput)
    with current_app.rpc.client() as rpc:
        payment = rpc.payments.charge(user["id"], data.orderId, data.token, request_id(user["id"]))
    return jsonify({"id": payment["id"]}), 201
