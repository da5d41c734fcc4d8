"""The auth service: users and refresh tokens. The gateway verifies access tokens itself."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from services.common import keys
from services.common.health import HealthMixin
from services.common.store import Store
from services.common.rpc import rpc
from services.common.settings import Settings

from . import service_layer as auth
from .models import Base
from .passwords import PasswordHashing
from .settings import AuthSettings


class SigningKey(DependencyProvider):
    """Refuses to start auth without a proper private key (missing, placeholder, too weak)."""

    def setup(self):
        keys.private_key()


class AuthService(HealthMixin):
    """Entrypoints only: each parses its arguments, calls one function of the service layer
    (:mod:`services.auth.service_layer`, which owns the transactions) and returns what it gives."""

    name = "auth"

    store = Store(Base)
    signing_key = SigningKey()
    settings = Settings(AuthSettings)
    hashing = PasswordHashing()

    @rpc
    def signup(self, email, password, client=None):
        return auth.signup(self.store, email, password, client, settings=self.settings)

    @rpc
    def signin(self, email, password, client=None):
        return auth.signin(self.store, email, password, client, settings=self.settings)

    @rpc
    def refresh(self, refresh_token):
        return auth.refresh(self.store, refresh_token, settings=self.settings)

    @rpc
    def signout(self, refresh_token=None):
        auth.sign_out(self.store, refresh_token)
        return {}

    @rpc
    def get_user(self, user_id):
        return auth.get_user(self.store, user_id)

    @rpc
    def find_user(self, email):
        """Operators: a user by email: id, email, whether revoked (then ``orders.find_orders(user_id=…)``)."""
        return auth.find_user(self.store, email)

    @rpc
    def revocations_since(self, after=0):
        """Gateways: revoked users and signed-out sessions (ids > ``after``) whose access tokens
        may still be alive; each gateway pulls these every second or so."""
        return auth.revocations_since(self.store, after, settings=self.settings)

    @rpc
    def revoke_user(self, email):
        """Operators: sign a user out everywhere and refuse refresh and sign-in from now on."""
        return auth.revoke_user(self.store, email)

    @rpc
    def restore_user(self, email):
        """Operators: undo revoke_user (the user signs in again)."""
        return auth.restore_user(self.store, email)
