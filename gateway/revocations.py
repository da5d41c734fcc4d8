"""Access tokens of signed-out sessions and revoked users stop within seconds, not at expiry.

The gateway verifies tokens itself (no RPC per request), so it must learn about
revocations: a background thread pulls ``auth.revocations_since(last)`` every
``REVOCATION_POLL_SECONDS`` (default 1) into an in-memory list. We chose a pull
over consuming an event: a gateway that was down or disconnected catches up
with the next call (nothing to miss), every replica sees every revocation
without a queue of its own, and the call is one indexed read. Entries are
forgotten once no token they could match is alive (ACCESS_TOKEN_TTL + leeway).
"""
from __future__ import annotations

import logging
import threading
import time


log = logging.getLogger(__name__)


class RevocationList:
    def __init__(self, rpc_pool, interval: float, horizon: float):
        """Pull every ``interval`` seconds (0: never); forget entries ``horizon`` seconds old."""
        self.rpc = rpc_pool
        self.interval = interval
        self.horizon = horizon
        self.last = 0
        self._users: dict[str, float] = {}  # user id -> not before (epoch seconds)
        self._sessions: dict[str, float] = {}  # session id -> when it was signed out
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_revoked(self, claims: dict) -> bool:
        with self._lock:
            not_before = self._users.get(claims.get("sub"))
            signed_out = claims.get("sid") in self._sessions
        return signed_out or (not_before is not None and claims.get("iat", 0) <= not_before)

    def apply(self, page: dict) -> None:
        with self._lock:
            for entry in page.get("revocations", []):
                if entry.get("sessionId"):
                    self._sessions[entry["sessionId"]] = entry["notBefore"]
                else:
                    self._users[entry["userId"]] = max(entry["notBefore"], self._users.get(entry["userId"], 0))
            self.last = max(self.last, int(page.get("last") or 0))
            horizon = time.time() - self.horizon
            for table in (self._users, self._sessions):
                for key in [k for k, at in table.items() if at < horizon]:
                    del table[key]

    def poll_once(self) -> None:
        while True:
            with self.rpc.client() as rpc:
                page = rpc.auth.revocations_since(self.last)
            self.apply(page)
            if len(page.get("revocations", [])) < 1000:
                return

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="revocations", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.poll_once()
                if failing:
                    log.info("revocation list is up to date again")
                failing = False
            except Exception as exc:  # auth or the broker away: keep what we have, try again
                if not failing:
                    log.warning("cannot pull revocations from auth (%r); retrying", exc)
                failing = True
            self._stop.wait(self.interval)
