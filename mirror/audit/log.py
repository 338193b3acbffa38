"""The audit log: append-only records, each carrying the SHA-256 of the one before.

`append` writes audit records inside the transaction of the change they record (the API, the
CLI, and the gate when the database is not the embedded SQLite file: see `direct`).
`verify` recomputes the chain and names the first record that does not fit: an edit, a deletion,
an insertion or a reordering all break it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mirror.audit.chain import GENESIS, canonical, clipped, record_hash
from mirror.progress import Progress
from mirror.store.models import AuditHead, AuditRecord

__all__ = ["GENESIS", "append", "as_dict", "canonical", "export_lines", "record_hash", "verify", "verify_session"]


def append(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    project: str | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one record in `session`'s transaction; appends are serialised by the head row."""
    details_text = canonical(details or {})
    details = json.loads(details_text)  # exactly what the database will give back
    actor, action, subject, project = clipped(actor, action, subject, project)
    at = at or datetime.now(UTC)
    # The select flushes the caller's pending changes first, so records keep the order of events.
    head_seq, head_hash = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    seq = head_seq + 1
    digest = record_hash(head_hash, seq, at, actor, action, subject, project, details_text)
    values = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "project": project,
        "details": details,
        "prev_hash": head_hash,
        "hash": digest,
    }
    # Core statements on the session's connection: the ORM's unit of work cost more than the
    # writes themselves on the API's hottest write (bench/api.py, create).
    connection = session.connection()
    connection.execute(AuditRecord.__table__.insert(), values)
    connection.execute(
        update(AuditHead.__table__)
        .where(AuditHead.__table__.c.id == 1, AuditHead.__table__.c.seq == head_seq)
        .values(seq=seq, hash=digest)
    )
    return AuditRecord(**values)


@dataclass(frozen=True)
class Verification:
    intact: bool
    records: int
    first_bad: int | None = None
    """Sequence number of the first record that does not fit (or the position where one is missing)."""
    problem: str = ""
    head: tuple[int, str] | None = None
    """(seq, hash) of the newest record of an intact log: what to keep as an anchor."""


def verify(
    records: Iterable[AuditRecord], head_seq: int, head_hash: str, anchors: dict[int, str] | None = None
) -> Verification:
    """The chain alone proves the log consistent, not unchanged: whoever can write the database can
    rewrite it from some record on (recomputing every hash and the head) or cut its end. `anchors`
    (`{seq: hash}` kept outside Airlock: from an earlier verify, or a webhook's `audit`) pin records
    that must still be there, unchanged."""
    anchors = anchors or {}
    expected_seq, prev, count = 1, GENESIS, 0
    for record in records:
        count += 1
        if record.seq in anchors and record.hash != anchors[record.seq]:
            return Verification(
                False,
                count,
                record.seq,
                f"record {record.seq} is not the one anchored (hash {record.hash[:16]}…, "
                f"anchored {anchors[record.seq][:16]}…): the log was rewritten at or before it",
            )
        if record.seq != expected_seq:
            return Verification(
                False,
                count,
                expected_seq,
                f"record {expected_seq} is missing (found {record.seq} in its place): records were deleted or inserted",
            )
        if record.prev_hash != prev:
            return Verification(
                False,
                count,
                record.seq,
                f"record {record.seq} does not link to record {record.seq - 1}: records were reordered, inserted or edited",
            )
        recomputed = record_hash(
            record.prev_hash,
            record.seq,
            record.at,
            record.actor,
            record.action,
            record.subject,
            record.project,
            record.details,
        )
        if recomputed != record.hash:
            return Verification(
                False,
                count,
                record.seq,
                f"record {record.seq} was altered after it was written (its hash does not match its content)",
            )
        prev, expected_seq = record.hash, expected_seq + 1
    if head_seq != expected_seq - 1 or (head_seq and head_hash != prev):
        return Verification(
            False,
            count,
            expected_seq,
            f"the chain ends at record {expected_seq - 1} but {head_seq} were written: the newest records were deleted",
        )
    beyond = sorted(seq for seq in anchors if seq >= expected_seq)
    if beyond:
        return Verification(
            False,
            count,
            beyond[0],
            f"the log ends at record {expected_seq - 1}, but record {beyond[0]} was "
            "anchored: the newest records were deleted",
        )
    return Verification(True, count, head=(expected_seq - 1, prev))


def verify_session(session: Session, label: str | None = None, anchors: dict[int, str] | None = None) -> Verification:
    """`label`: show progress on stderr under that name (a log of gate decisions runs to gigabytes,
    hence a few records in memory at a time)."""
    head = session.get(AuditHead, 1)
    records: Iterable[AuditRecord] = session.execute(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=20)
    ).scalars()
    if label is not None:
        records = _counted(records, Progress(head.seq if head else 0, 0, label, unit="records"))
    return verify(records, head.seq if head else 0, head.hash if head else GENESIS, anchors)


def _counted(records: Iterable[AuditRecord], progress: Progress) -> Iterator[AuditRecord]:
    try:
        for record in records:
            yield record
            progress.advance(files=1)
    finally:
        progress.close()


def as_dict(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at.astimezone(UTC).isoformat(),
        "actor": record.actor,
        "action": record.action,
        "subject": record.subject,
        "project": record.project,
        "details": record.details,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def export_lines(session: Session) -> Iterator[str]:
    # A few records at a time: a gate decision's details run to megabytes.
    for record in session.execute(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=20)
    ).scalars():
        # ASCII-escaped: a user's U+2028 or \x1c must not split a JSON Lines record in two.
        yield json.dumps(as_dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
