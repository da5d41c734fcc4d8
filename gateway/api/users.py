"""/api/users: sign-up, sign-in, sign-out, current user, refresh."""
from __future__ import annotations

from typing import Annotated

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, WithJsonSchema

from services.common.errors import NotAuthorized
from services.common.validation import EMAIL_SCHEMA, Credentials, SigninCredentials

from ..auth import REFRESH_COOKIE, clear_auth_cookies, current_user, set_auth_cookies
from ..http import body

bp = Blueprint("users", __name__, url_prefix="/api/users")


class User(BaseModel):
    """A user, as auth's ``User.to_dict`` gives it."""
    id: str
    email: Annotated[str, WithJsonSchema(EMAIL_SCHEMA)]


class CurrentUser(BaseModel):
    currentUser: User | None  # noqa: N815 - the JSON name


def _signed_in(session: dict, status: int):
    return set_auth_cookies(jsonify(session["user"]), session), status


@bp.post("/signup")
def signup():
    data = body(Credentials)
    with current_app.rpc.client() as rpc:
        session = rpc.auth.signup(data.email, data.password, request.remote_addr)
    return _signed_in(session, 201)


@bp.post("/signin")
def signin():
    data = body(SigninCredentials)
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
