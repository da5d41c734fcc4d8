"""/api/payments: pay for an order by card."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from services.common.validation import IdOf, Input, NonEmpty

from ..auth import require_user
from ..http import body, request_id

bp = Blueprint("payments", __name__, url_prefix="/api/payments")


class PaymentBody(Input):
    token: NonEmpty("Token")
    orderId: IdOf("Order id")  # noqa: N815 - the JSON field's name


@bp.post("")
@require_user
def create_payment(user):
    data = body(PaymentBody)
    with current_app.rpc.client() as rpc:
        payment = rpc.payments.charge(user["id"], data.orderId, data.token, request_id(user["id"]))
    return jsonify({"id": payment["id"]}), 201
