"""The exception requests the database holds, as the rest of the service reads them — and the one
writer that is no reaction to a person: marking approvals whose time is up as expired.

Reads are pure: building the allowlist, serving a page or listing grants never writes. Expiry is
enforced at decision time without any write (a grant past its end grants nothing); `expire_due`
records it (`exception.expired` in the audit log) and is run by the service's background poller.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from mirror.audit.log import append
from mirror.clock import utc_now
from mirror.policy import Ecosystem, ExceptionGrant
from mirror.store.db import Database
from mirror.store.models import ExceptionRequest

STATES = ("pending", "approved", "rejected", "revoked", "expired")


def grants(database: Database) -> list[ExceptionGrant]:
    """Approved exceptions, as the policy builds rules from them (those past their end included:
    the policy itself ignores them, so an expiry never waits for `expire_due`)."""
    with database.reading(snapshot=False) as session:
        rows = (
            session.execute(select(ExceptionRequest).where(ExceptionRequest.status.in_(("approved", "expired"))))
            .scalars()
            .all()
        )
    return [
        ExceptionGrant(
            str(r.id),
            Ecosystem(r.ecosystem),
            r.package,
            r.versions,
            frozenset(r.environments),
            r.expires_at,
            r.decided_by or "?",
            r.project,
            frozenset(r.waives or ()),
        )
        for r in rows
        if r.expires_at is not None
    ]


def grants_in_force(database: Database, ecosystem: Ecosystem, environments: set[str]) -> list[ExceptionRequest]:
    """Approved, unexpired exceptions of `ecosystem` naming one of `environments`."""
    now = utc_now()
    with database.reading() as session:
        rows = (
            session.execute(
                select(ExceptionRequest).where(
                    ExceptionRequest.ecosystem == ecosystem.value,
                    ExceptionRequest.status == "approved",
                    ExceptionRequest.expires_at > now,
                )
            )
            .scalars()
            .all()
        )
    return [row for row in rows if environments & set(row.environments)]


def expire_due(database: Database) -> int:
    """Mark approvals past their end as expired, one `exception.expired` record each; returns how many."""
    now = utc_now()
    expired = 0
    with database.transaction() as session:
        due = (
            session.execute(
                select(ExceptionRequest).where(
                    ExceptionRequest.status == "approved", ExceptionRequest.expires_at <= now
                )
            )
            .scalars()
            .all()
        )
        for row in due:
            won = session.execute(
                update(ExceptionRequest)
                .where(ExceptionRequest.id == row.id, ExceptionRequest.status == "approved")
                .values(status="expired")
            ).rowcount
            if won:
                append(
                    session,
                    "airlock",
                    "exception.expired",
                    f"exception {row.id}",
                    {"expires_at": row.expires_at.isoformat()},
                    project=row.project,
                )
                expired += 1
    return expired


def counts_by_state(database: Database) -> dict[str, int]:
    with database.reading(snapshot=False) as session:
        rows = session.execute(select(ExceptionRequest.status, func.count()).group_by(ExceptionRequest.status)).all()
    counts = dict.fromkeys(STATES, 0)
    counts.update(dict(rows))
    return counts


def fingerprint(database: Database) -> tuple:
    """Changes whenever the set of approved exceptions may have changed (for other replicas)."""
    with database.reading(snapshot=False) as session:
        rows = session.execute(
            select(ExceptionRequest.id, ExceptionRequest.status, ExceptionRequest.expires_at).where(
                ExceptionRequest.status.in_(("approved", "revoked", "expired"))
            )
        ).all()
    return tuple(sorted(rows))


def request_payload(row: ExceptionRequest | Any) -> dict[str, Any]:
    """A request as JSON values (an ORM row or a row mapping): what webhooks carry, the fields of the API's answer."""
    values = {
        column.name: row[column.name] if hasattr(row, "keys") else getattr(row, column.name)
        for column in ExceptionRequest.__table__.columns
    }
    return json.loads(json.dumps(values, default=_json_value))


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as pydantic writes UTC
    raise TypeError(f"cannot serialise {type(value).__name__}")
