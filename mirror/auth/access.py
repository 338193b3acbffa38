"""Who may do what, decided in one place: the caller's token becomes a `Principal`, a permission is
required of it, and every refusal of an actor is written to the audit log before it is returned
(callers without a valid token are counted and summarised: `mirror.auth.denials`).

API routes (`mirror.auth.deps`) and package routes (`mirror.observability`, with
AIRLOCK_REQUIRE_TOKEN=true) authenticate through the same `AccessControl`. Nothing here knows a
domain: the exception workflow, the governance routes and the gate's endpoint call `require`.
"""

from __future__ import annotations

import base64

from mirror.audit.log import append
from mirror.auth.denials import DenialSummary
from mirror.auth.roles import Permission, Principal
from mirror.auth.tokens import TokenCache
from mirror.store.db import Database

TOKEN_HINT = "a bearer token is required: Authorization: Bearer alk_… (create one with `airlock token create`)"


class AccessDenied(Exception):
    """A refusal already audited: 401 (no valid token) or 403 (the role may not)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def presented_token(authorization: str) -> str | None:
    """A token as a bearer token, or as the password of basic auth (what pip and conda send)."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials).decode().partition(":")[2] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


class AccessControl:
    def __init__(
        self, database: Database, tokens: TokenCache | None = None, denials: DenialSummary | None = None
    ) -> None:
        self.database = database
        self.tokens = tokens or TokenCache()
        self.denials = denials or DenialSummary()

    def cached(self, presented: str) -> Principal | None:
        """A principal seen in the last seconds, answered from memory (no thread hop, no query)."""
        return self.tokens.cached(presented)

    def lookup(self, presented: str) -> tuple[Principal | None, str]:
        """The token's principal, or None and why not (never the secret). Not audited."""
        return self.tokens.lookup(presented, self.database)

    def authenticate(self, presented: str | None, attempt: str, path: str, source: str = "?") -> Principal:
        """The caller's principal; raises AccessDenied(401), counted, for a missing or invalid token."""
        if not presented:
            raise self.deny(None, attempt, path, TOKEN_HINT, status=401, source=source)
        principal, why = self.lookup(presented)
        if principal is None:
            raise self.deny(None, attempt, path, f"invalid token: {why}", status=401, source=source)
        return principal

    def deny(
        self,
        principal: Principal | None,
        action: str,
        subject: str,
        reason: str,
        project: str | None = None,
        status: int = 403,
        source: str = "?",
    ) -> AccessDenied:
        """Audit a denied attempt of an actor (in its own transaction) and return the error to
        raise; a caller without a valid token is counted and summarised (`mirror.auth.denials`)."""
        if principal is None:
            kind = "missing" if reason == TOKEN_HINT else "invalid"
            self.denials.note(source, reason, action, kind)
            return AccessDenied(status, reason)
        with self.database.transaction() as session:
            append(
                session,
                principal.user,
                "access.denied",
                subject,
                {"attempted": action, "reason": reason, "role": principal.role, "status": status},
                project=project,
            )
        return AccessDenied(status, reason)

    def require(
        self, principal: Principal, permission: Permission, project: str | None, action: str, subject: str
    ) -> None:
        if not principal.may(permission, project):
            where = f" for project {project}" if project and principal.scope(permission) else ""
            raise self.deny(
                principal, action, subject, f"role {principal.role} may not {permission.value}{where}", project
            )
