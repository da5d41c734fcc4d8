"""/api/users: sign-up, sign-in, sign-out, current user, refresh."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from services.common.errors import NotAuthorized
from services.common.validation import MAX_EMAIL_LENGTH, Email, Input, NonEmpty, Password

from ..auth import REFRESH_COOKIE, clear_auth_cookies, current_user, set_auth_cookies
from ..http import body

bp = Blueprint("users", __name__, url_prefix="/api/users")


class SignupBody(Input):
    email: Email
    password: Password


class SigninBody(Input):
    # Bounded like sign-up's fields, so a huge value is refused before hashing or the database.
    email: NonEmpty("Email", MAX_EMAIL_LENGTH)
    password: NonEmpty("Password", 64)


def _signed_in(session: dict, status: int):
    return set_auth_cookies(jsonify(session["user"]), session), status


@bp.post("/signup")
def signup():
    data = body(SignupBody)
    with current_app.rpc.client() as rpc:
        session = rpc.auth.signup(data.email, data.password, request.remote_addr)
    return _signed_in(session, 201)


@bp.post("/signin")
def signin():
    data = body(SigninBody)
    with current_app.rpc.client() as rpc:
        session = rpc.auth.signin(data.email, data.password, request.remote_addr)
    return _signed_in(session, 200)


@bp.post("/signout")
def signout():
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if refresh_token:
        with current_app.rpc.client() as rpc:
            rpc.auth.signout(refresh_token)
    return clear_auth_cookies(jsonify({})), 200


@bp.get("/currentuser")
@bp.get("/currentUser")
def currentuser():
    return jsonify({"currentUser": current_user()})


@bp.post("/refresh")
def refresh():
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if not refresh_token:
        raise NotAuthorized()
    try:
        with current_app.rpc.client() as rpc:
            session = rpc.auth.refresh(refresh_token)
    except NotAuthorized as exc:
        response = current_app.make_error_response(exc)
        return clear_auth_cookies(response), exc.status
    return _signed_in(session, 200)
