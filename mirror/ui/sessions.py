"""Sign-in sessions of the web UI: an API token, given once, exchanged for a session.

The cookie holds a random session id only (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS); the
token stays on the server, and every page checks it again (a revoked or expired token ends the
session). Each session has its own CSRF token, which every form carries. Sessions live in memory:
a restart signs everyone out, and replicas do not share them (a load balancer keeps a user on one).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "airlock_session"
PRE_SIGN_IN_COOKIE = "airlock_sign_in"
"""The CSRF token of the sign-in form, before there is a session (no login CSRF)."""
IDLE_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000


@dataclass
class UiSession:
    token: str
    csrf: str
    user: str
    seen: float


class UiSessions:
    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()

    def create(self, token: str, user: str) -> tuple[str, UiSession]:
        session_id = secrets.token_urlsafe(32)
        session = UiSession(token, secrets.token_urlsafe(24), user, time.monotonic())
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:  # bounded: the oldest idle ones go first
                for stale in sorted(self._sessions, key=lambda key: self._sessions[key].seen)[: MAX_SESSIONS // 10]:
                    del self._sessions[stale]
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> UiSession | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.seen > self.idle_seconds:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a form's CSRF token."""
    return bool(given) and hmac.compare_digest(str(given), expected)
