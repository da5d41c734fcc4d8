"""Sign up, sign in, sign out: the gateway sets and clears the auth cookies."""
from flask import Blueprint, flash, redirect, render_template, request

from ..api import ApiError, gateway
from .common import Form, current_user, local_path

bp = Blueprint("auth", __name__, url_prefix="/auth")

FIELDS = ("email", "password")
FORM_STATUSES = (400, 409, 413, 422, 429)


def _next():
    return local_path(request.values.get("next")) or "/"


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    return _credentials_page("signup", "/api/users/signup", "Welcome! Your account is ready and you are signed in.")


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    return _credentials_page("signin", "/api/users/signin", "Welcome back! You are signed in.")


def _credentials_page(kind, api_path, welcome):
    if request.method == "GET":
        if current_user() is not None:
            return redirect(_next())
        return render_template(f"auth/{kind}.html", form=Form(FIELDS), next=local_path(request.args.get("next")))

    # The password is never written back into the page.
    form = Form.from_request(FIELDS, keep=("email",))
    try:
        gateway().post(api_path, {"email": form.posted["email"].strip(), "password": form.posted["password"]})
    except ApiError as exc:
        if exc.status not in FORM_STATUSES:
            raise
        form.add_api_error(exc)
        return render_template(f"auth/{kind}.html", form=form, next=local_path(request.form.get("next"))), exc.status
    flash(welcome, "success")
    return redirect(_next())


@bp.route("/signout", methods=["GET", "POST"])
def signout():
    if request.method == "GET":
        # Signing out changes state, so it takes a POST (a form button, no JS needed).
        return render_template("auth/signout.html")
    try:
        gateway().post("/api/users/signout")
    except ApiError as exc:
        if exc.status != 401:
            raise
    gateway().forget_user()
    flash("You are signed out. See you soon!", "success")
    return redirect("/")
