"""API tokens: `alk_{id}_{secret}`. Shown once; only the secret's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mirror.audit.log import append
from mirror.auth.roles import ROLES, Principal
from mirror.store.models import Token

_TOKEN = re.compile(r"^alk_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
_DURATION = re.compile(r"^(\d+)([dh])$")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
DEFAULT_MAX_DAYS = 365


class TokenError(ValueError):
    """A token request that cannot be honoured, with what to do instead; `field` names the part."""

    def __init__(self, message: str, field: str = "expires_in") -> None:
        super().__init__(message)
        self.field = field


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise TokenError(f"invalid duration {text!r}: write e.g. 90d or 12h")
    amount = int(match.group(1))
    if amount > 36_500:  # also keeps timedelta from overflowing on 10**20d
        raise TokenError(f"invalid duration {text!r}: at most {DEFAULT_MAX_DAYS}d by default (AIRLOCK_TOKEN_MAX_DAYS)")
    return timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    user: str,
    role: str,
    projects: list[str],
    expires_in: timedelta | None,
    actor: str = "cli",
    *,
    max_days: int = DEFAULT_MAX_DAYS,
    via: str = "cli",
) -> tuple[str, Token]:
    """Issue a token (audited: who minted it, for whom, through what). `expires_in` None is the
    longest lifetime allowed, `max_days` (AIRLOCK_TOKEN_MAX_DAYS): no token lives for ever."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r} (roles: {', '.join(ROLES)})", "role")
    longest = timedelta(days=max_days)
    if expires_in is None:
        expires_in = longest
    if expires_in > longest or expires_in <= timedelta(0):
        raise TokenError(
            f"a token lives between 1h and {max_days}d (AIRLOCK_TOKEN_MAX_DAYS); asked for {_days(expires_in)}: "
            "issue a shorter one and a new one when it expires"
        )
    if not user.strip():
        raise TokenError("--user must name a person or a process", "user")
    bad = [p for p in projects if not PROJECT_NAME.match(p)]
    if bad:
        raise TokenError(f"invalid project name {bad[0]!r}: lowercase letters, digits, '.', '_' and '-'", "projects")
    now = datetime.now(UTC)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = Token(
        id=token_id,
        secret_hash=_digest(secret),
        user=user.strip(),
        role=role,
        projects=sorted(set(projects)),
        created_at=now,
        expires_at=now + expires_in,
    )
    session.add(row)
    append(
        session,
        actor,
        "token.created",
        f"token {token_id}",
        {
            "user": row.user,
            "role": role,
            "projects": row.projects,
            "expires_at": row.expires_at.isoformat(),
            "minted_by": actor,
            "via": via,
        },
    )
    return f"alk_{token_id}_{secret}", row


def _days(delta: timedelta) -> str:
    return f"{delta.days}d" if delta.seconds == 0 else f"{delta.total_seconds() / 3600:.0f}h"


def authenticate(session: Session, presented: str) -> tuple[Principal | None, str]:
    """The principal of a valid token, or None and why not (never the secret)."""
    match = _TOKEN.match(presented.strip())
    if match is None:
        return None, "malformed token (expected alk_…)"
    row = session.get(Token, match.group(1))
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(match.group(2))):
        return None, f"unknown token {match.group(1)}"
    now = datetime.now(UTC)
    if row.revoked_at is not None:
        return None, f"token {row.id} was revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return None, f"token {row.id} expired at {row.expires_at.isoformat(timespec='seconds')}"
    return Principal(row.user, row.role, frozenset(row.projects), row.id, row.expires_at), ""


class TokenCache:
    """Remembers valid tokens for `ttl` seconds (a revocation takes effect within that time), so
    that reads do not cost a database round trip for authentication each."""

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}

    def cached(self, presented: str) -> Principal | None:
        entry = self._entries.get(presented)
        if entry is None or time.monotonic() - entry[0] >= self.ttl:
            return None
        principal = entry[1]
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            return None
        return principal

    def lookup(self, presented: str, database) -> tuple[Principal | None, str]:
        principal = self.cached(presented)
        if principal is not None:
            return principal, ""
        now = time.monotonic()
        with database.reading(snapshot=False) as session:
            principal, why = authenticate(session, presented)
        if principal is None:
            self._entries.pop(presented, None)
        else:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[presented] = (now, principal)
        return principal, why


def list_tokens(session: Session) -> list[Token]:
    return list(session.execute(select(Token).order_by(Token.created_at)).scalars())


def revoke_token(session: Session, token_id: str, actor: str = "cli") -> Token | None:
    row = session.get(Token, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        append(session, actor, "token.revoked", f"token {token_id}", {"user": row.user, "role": row.role})
    return row
