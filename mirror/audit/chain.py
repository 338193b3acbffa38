"""The audit chain's arithmetic: canonical JSON, each record's hash, the column limits.

Pure and import-light (no database library): both writers of the chain use it — `log.append`
inside the service's SQLAlchemy transactions, and `direct` for short-lived commands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
LIMITS = {"actor": 200, "action": 60, "subject": 300, "project": 100}
"""Column lengths (PostgreSQL enforces them): whatever a caller sent, the record is written, clipped."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def spliced(value: dict[str, Any], key: str, text: str, dumps: Callable[[Any], str] = canonical) -> str:
    """`dumps(value)` where `value[key]` is given as its JSON text already (as `dumps` would write
    it): a gate decision's thousands of findings are serialised once, for the audit record and the
    JSON report. With `canonical`, members are sorted first, as its `sort_keys` would."""
    members = dict(sorted(value.items())) if dumps is canonical else value
    names = list(members)
    where = names.index(key)
    parts = [
        dumps({name: members[name] for name in names[:where]})[1:-1],
        f"{dumps(key)}:{text}",
        dumps({name: members[name] for name in names[where + 1 :]})[1:-1],
    ]
    return "{" + ",".join(part for part in parts if part) + "}"


def clipped(actor: str, action: str, subject: str, project: str | None) -> tuple[str, str, str, str | None]:
    return (
        actor[: LIMITS["actor"]],
        action[: LIMITS["action"]],
        subject[: LIMITS["subject"]],
        project[: LIMITS["project"]] if project else project,
    )


def record_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    project: str | None,
    details: dict[str, Any] | str,
) -> str:
    """SHA-256 of the previous hash and the record's canonical JSON.

    `details` may be given already canonical (a string): it is spliced in where `canonical` of the
    whole record would put it, so a gate decision with thousands of findings is serialised once."""
    details_text = details if isinstance(details, str) else canonical(details)
    record = {
        "action": action,
        "actor": actor,
        "at": at.astimezone(UTC).isoformat(),
        "details": None,
        "project": project,
        "seq": seq,
        "subject": subject,
    }
    return hashlib.sha256((prev_hash + spliced(record, "details", details_text)).encode()).hexdigest()
