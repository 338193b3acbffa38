"""Reading the audit log for the API: filtered pages that stop at a size, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, select

from mirror.audit.log import as_dict
from mirror.store.db import Database
from mirror.store.models import AuditRecord

PAGE_BYTES = 16 * 2**20
"""Details per page: 200 gate decisions of an ML image would be gigabytes in memory."""


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    subject: str | None = None
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    projects: frozenset[str] | None = None
    """Only records of these projects (a reader whose role sees its own projects); None: all."""


def audit_page(database: Database, where: AuditFilter, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Records after `after_seq`: at most `limit` and about PAGE_BYTES of details (one at least);
    and whether more may follow."""
    conditions = [AuditRecord.seq > after_seq]
    if where.projects is not None:
        conditions.append(AuditRecord.project.in_(sorted(where.projects)))
    for column, value in (
        (AuditRecord.action, where.action),
        (AuditRecord.actor, where.actor),
        (AuditRecord.subject, where.subject),
        (AuditRecord.project, where.project),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.since is not None:
        conditions.append(AuditRecord.at >= where.since)
    if where.until is not None:
        conditions.append(AuditRecord.at < where.until)
    with database.reading() as session:
        sizes = session.execute(
            select(AuditRecord.seq, func.length(cast(AuditRecord.details, Text)))
            .where(*conditions)
            .order_by(AuditRecord.seq)
            .limit(limit)
        ).all()
        last = page_end(sizes)
        records = (
            session.execute(
                select(AuditRecord).where(*conditions, AuditRecord.seq <= last).order_by(AuditRecord.seq)
            ).scalars()
            if last
            else []
        )
        page = [as_dict(record) for record in records]
    return page, bool(page) and (len(page) < len(sizes) or len(sizes) == limit)


def page_end(sizes: list[tuple[int, int | None]]) -> int:
    """The last sequence number of a page (0: none): records while their details fit PAGE_BYTES, one at least."""
    total, last = 0, 0
    for seq, size in sizes:
        total += size or 0
        if total > PAGE_BYTES and last:
            break
        last = seq
    return last
