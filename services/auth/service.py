"""The auth service: users and refresh tokens. The gateway verifies access tokens itself."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from services.common import keys
from services.common.errors import BadRequest, NotAuthorized, NotFound
from services.common.health import HealthMixin
from services.common.store import Store
from services.common.validation import is_valid_id
from services.common.rpc import rpc
from services.common.settings import Settings

from . import domain
from .models import Base, User
from .passwords import PasswordHashing
from .settings import AuthSettings


class SigningKey(DependencyProvider):
    """Refuses to start auth without a proper private key (missing, placeholder, too weak)."""

    def setup(self):
        keys.private_key()


class AuthService(HealthMixin):
    name = "auth"

    store = Store(Base)
    signing_key = SigningKey()
    settings = Settings(AuthSettings)
    hashing = PasswordHashing()

    @rpc
    def signup(self, email, password, client=None):
        domain.check_credentials(email, password)  # 400 before anything is counted or hashed
        if client:
            with self.store.transaction() as tx:
                domain.count_signup(tx.session, client, settings=self.settings)
        with self.store.transaction() as tx:
            return domain.sign_up(tx.session, email, password, settings=self.settings)

    @rpc
    def signin(self, email, password, client=None):
        email = domain.signin_email(email, password)
        # counted and committed before the (slow, memory-hard) password check
        with self.store.transaction() as tx:
            domain.count_signin_attempt(tx.session, email, client, settings=self.settings)
        with self.store.transaction() as tx:
            result = domain.sign_in(tx.session, email, password, client, settings=self.settings)
        if result is None:
            raise BadRequest("Invalid credentials")
        return result

    @rpc
    def refresh(self, refresh_token):
        with self.store.transaction() as tx:
            result = domain.refresh(tx.session, refresh_token, settings=self.settings)
        if result is None:  # reuse detected; the family is revoked now
            raise NotAuthorized("Refresh token reuse detected; please sign in again")
        return result

    @rpc
    def signout(self, refresh_token=None):
        with self.store.transaction() as tx:
            domain.sign_out(tx.session, refresh_token)
        return {}

    @rpc
    def get_user(self, user_id):
        with self.store.read() as session:
            user = session.get(User, user_id) if is_valid_id(str(user_id)) else None
            if user is None:
                raise NotFound("User not found")
            return user.to_dict()

    @rpc
    def find_user(self, email):
        """Operators: a user by email: id, email, whether revoked (then ``orders.find_orders(user_id=…)``)."""
        with self.store.read() as session:
            return domain.find_user(session, email)

    @rpc
    def revocations_since(self, after=0):
        """Gateways: revoked users and signed-out sessions (ids > ``after``) whose access tokens
        may still be alive; each gateway pulls these every second or so."""
        with self.store.read() as session:
            return domain.revocations_since(session, after, settings=self.settings)

    @rpc
    def revoke_user(self, email):
        """Operators: sign a user out everywhere and refuse refresh and sign-in from now on."""
        with self.store.transaction() as tx:
            return domain.revoke_user(tx.session, email)

    @rpc
    def restore_user(self, email):
        """Operators: undo revoke_user (the user signs in again)."""
        with self.store.transaction() as tx:
            return domain.restore_user(tx.session, email)
