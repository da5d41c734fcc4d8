"""My orders, one order (status, time left, pay form), paying and cancelling."""
from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, redirect, render_template, request

from ..api import ApiError, GatewayUnavailable, gateway
from .common import Form, posted_request_key, require_user

bp = Blueprint("orders", __name__, url_prefix="/orders")

STATUS_LABELS = {
    "created": "Awaiting payment",
    "awaiting:payment": "Processing payment",
    "complete": "Complete",
    "cancelled": "Cancelled",
}
TEST_CARDS = (
    ("tok_visa", "Visa ending in 4242", "payment succeeds"),
    ("tok_chargeDeclined", "Card ending in 0002", "the bank declines it"),
)


def seconds_left(order, now=None) -> int:
    """Whole seconds until the order's expiresAt (0 when past or unreadable)."""
    try:
        expires = datetime.fromisoformat(str(order.get("expiresAt")).replace("Z", "+00:00"))
    except ValueError:
        return 0
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0, int((expires - now).total_seconds()))


def clock(seconds: int) -> str:
    minutes, secs = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def status_label(status) -> str:
    return STATUS_LABELS.get(status, str(status).replace(":", " ").capitalize())


@bp.app_context_processor
def order_helpers():
    return {"status_label": status_label, "clock": clock}


@bp.get("")
def index():
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    orders = gateway().get("/api/orders").data or []
    # The API lists oldest first; people look for their latest order first.
    return render_template("orders/index.html", orders=list(reversed(orders)), seconds_left=seconds_left)


def _order_page(order_id, form=None, status=200):
    order = gateway().get(f"/api/orders/{order_id}").data
    left = seconds_left(order)
    state = order.get("status")
    just_paid = request.args.get("paid") == "1" and state in ("created", "awaiting:payment")
    payable = state == "created" and left > 0 and not just_paid
    return (
        render_template(
            "orders/show.html",
            order=order,
            seconds_left=left,
            payable=payable,
            confirming=state == "awaiting:payment" or just_paid,
            timed_out=state == "created" and left <= 0,
            form=form or Form(("token",), {"token": "tok_visa"}),
            test_cards=TEST_CARDS,
        ),
        status,
    )


@bp.get("/<order_id>")
def show(order_id):
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    return _order_page(order_id)


@bp.post("/<order_id>/pay")
def pay(order_id):
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    form = Form.from_request(("token",))
    token = form.posted["token"].strip()
    if not token:
        form.add("token", "Choose a card to pay with.")
        return _order_page(order_id, form, 400)
    try:
        gateway().post(
            "/api/payments",
            {"token": token, "orderId": order_id},
            timeout=current_app.config["PAYMENT_TIMEOUT"],
            idempotency_key=posted_request_key(),
        )
    except ApiError as exc:
        if exc.status == 402:
            form.add_api_error(exc, default_field="token")
            return _order_page(order_id, form, 402)
        if exc.status in (400, 409, 429):
            form.add_api_error(exc)
            return _order_page(order_id, form, exc.status)
        raise
    except GatewayUnavailable as exc:
        exc.order_id = order_id  # the 503 page links back to the order: it is never charged twice
        raise
    flash("Thank you! Your payment was received.", "success")
    return redirect(f"/orders/{order_id}?paid=1")


@bp.post("/<order_id>/cancel")
def cancel(order_id):
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    try:
        gateway().delete(f"/api/orders/{order_id}")
    except ApiError as exc:
        if exc.status != 409:
            raise
        flash(" ".join(exc.messages()) or "This order can no longer be cancelled.", "error")
        return redirect(f"/orders/{order_id}")
    flash("Your order is cancelled and the ticket is back on sale.", "success")
    return redirect(f"/orders/{order_id}")
