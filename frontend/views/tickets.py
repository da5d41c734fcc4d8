"""The landing page (tickets on sale) and a ticket's pages: new, details, edit, purchase."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request

from ..api import ApiError, gateway
from ..money import parse_price, price_input_value
from .common import Form, current_user, posted_request_key, require_user, signin_url

bp = Blueprint("tickets", __name__)

FIELDS = ("title", "price")
FORM_STATUSES = (400, 409, 413, 422)


@bp.get("/")
def index():
    cursor = request.args.get("cursor")
    params = {"limit": current_app.config["TICKETS_PAGE_SIZE"]}
    if cursor:
        params["cursor"] = cursor
    current_user()  # ask who is signed in first: it may refresh the auth cookies
    try:
        page = gateway().get("/api/tickets", params=params)
    except ApiError as exc:
        if exc.status == 400 and cursor:  # a stale or mangled cursor: start over
            return redirect("/")
        raise
    return render_template("index.html", tickets=page.data or [], next_cursor=page.next_cursor(), paged=bool(cursor))


def _ticket_form_from_request():
    form = Form.from_request(FIELDS)
    price = parse_price(form.posted["price"])
    if price is None:
        form.add("price", "Enter a price in dollars, such as 25 or 12.50.")
        if not form.posted["title"].strip():
            form.add("title", "Enter a title.")
    return form, price


@bp.route("/tickets/new", methods=["GET", "POST"])
def new():
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    if request.method == "GET":
        return render_template("tickets/new.html", form=Form(FIELDS))
    form, price = _ticket_form_from_request()
    if form.ok:
        try:
            ticket = gateway().post("/api/tickets", {"title": form.posted["title"].strip(), "price": price},
                                    idempotency_key=posted_request_key()).data
        except ApiError as exc:
            if exc.status not in FORM_STATUSES:
                raise
            form.add_api_error(exc)
            return render_template("tickets/new.html", form=form), exc.status
        flash("Your ticket is on sale. Share the link with buyers!", "success")
        return redirect(f"/tickets/{ticket['id']}")
    return render_template("tickets/new.html", form=form), 400


def _ticket_page(ticket_id, error=None, status=200):
    user = current_user()
    ticket = gateway().get(f"/api/tickets/{ticket_id}").data
    is_owner = bool(user) and user.get("id") == ticket.get("userId")
    my_order = None
    if ticket.get("orderId") and user and not is_owner:
        try:
            my_order = gateway().get(f"/api/orders/{ticket['orderId']}").data
        except ApiError:
            my_order = None  # someone else's order: all we may say is "reserved"
    return (
        render_template(
            "tickets/show.html",
            ticket=ticket,
            is_owner=is_owner,
            my_order=my_order,
            availability=availability(ticket),
            error=error,
        ),
        status,
    )


def availability(ticket) -> str:
    """'on sale', 'reserved', 'sold', or 'taken' (reserved or sold: the API's ticket cannot tell)."""
    status = str(ticket.get("status") or "").lower()
    if status in ("sold", "complete", "completed") or ticket.get("sold") is True or ticket.get("soldAt"):
        return "sold"
    if status == "reserved" or (ticket.get("orderId") and ticket.get("sold") is False):
        return "reserved"
    if ticket.get("orderId"):
        return "taken"
    return "on sale"


@bp.get("/tickets/<ticket_id>")
def show(ticket_id):
    return _ticket_page(ticket_id)


@bp.post("/tickets/<ticket_id>/purchase")
def purchase(ticket_id):
    if current_user() is None:
        flash("Sign in or create an account to buy this ticket.", "info")
        return redirect(signin_url(f"/tickets/{ticket_id}"))
    try:
        order = gateway().post("/api/orders", {"ticketId": ticket_id}).data
    except ApiError as exc:
        if exc.status in (400, 409):
            return _ticket_page(ticket_id, error=" ".join(exc.messages()), status=exc.status)
        raise
    flash("The ticket is reserved for you. Pay before the time runs out to make it yours.", "success")
    return redirect(f"/orders/{order['id']}")


@bp.route("/tickets/<ticket_id>/edit", methods=["GET", "POST"])
def edit(ticket_id):
    user, to_signin = require_user()
    if to_signin:
        return to_signin
    ticket = gateway().get(f"/api/tickets/{ticket_id}").data
    if user.get("id") != ticket.get("userId"):
        abort(403)
    locked = bool(ticket.get("orderId"))
    if request.method == "GET":
        form = Form(FIELDS, {"title": ticket.get("title", ""), "price": price_input_value(ticket.get("price"))})
        if locked:
            form.general.append("This ticket is reserved or sold, so it cannot be edited now.")
        return render_template("tickets/edit.html", form=form, ticket=ticket, locked=locked)
    form, price = _ticket_form_from_request()
    if not form.ok:
        return render_template("tickets/edit.html", form=form, ticket=ticket, locked=locked), 400
    try:
        gateway().put(f"/api/tickets/{ticket_id}", {"title": form.posted["title"].strip(), "price": price})
    except ApiError as exc:
        if exc.status not in FORM_STATUSES:
            raise
        form.add_api_error(exc)
        return render_template("tickets/edit.html", form=form, ticket=ticket, locked=exc.status == 409), exc.status
    flash("Your changes are saved.", "success")
    return redirect(f"/tickets/{ticket_id}")
