"""The audit trail (filtered, paginated, each record linked to its subject, the chain's newest
anchor and an on-demand verification) and the gate's recent decisions, blocking findings first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mirror.audit.log import verify_session
from mirror.audit.reads import AuditFilter, audit_page
from mirror.auth.access import AccessDenied
from mirror.auth.roles import Permission
from mirror.store.models import AuditHead
from mirror.ui.context import ViewerDep, page, refusal_page

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50


def _reader(viewer) -> frozenset[str] | None:
    """The projects whose records the viewer may read (None: all); AccessDenied when none."""
    scope = viewer.principal.scope(Permission.READ_AUDIT)
    if scope is None:
        raise AccessDenied(403, f"role {viewer.principal.role} may not read the audit log")
    return viewer.principal.projects if scope.name == "OWN" else None


def _head(database) -> tuple[int, str]:
    with database.reading() as session:
        head = session.get(AuditHead, 1)
        return (head.seq, head.hash) if head else (0, "")


@router.get("/audit")
async def audit(
    request: Request,
    viewer: ViewerDep,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=60)] = "",
    subject: Annotated[str, Query(max_length=300)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
    verify: bool = False,
) -> Response:
    try:
        projects = _reader(viewer)
        when = datetime.fromisoformat(since) if since else None
    except AccessDenied as exc:
        return refusal_page(request, viewer, exc)
    except ValueError:
        return page(request, "refused.html", viewer, status=422, message=f"since: {since!r} is not a date (2026-12-01)")
    where = AuditFilter(action or None, actor or None, subject or None, None, when, None, projects)
    database = viewer.parts.database
    records, more = await run_in_threadpool(audit_page, database, where, after, PAGE)
    head = await run_in_threadpool(_head, database)
    verification = None
    if verify and projects is None:  # the whole chain: for those who may read all of it

        def check():
            with database.reading() as session:
                return verify_session(session)

        verification = await run_in_threadpool(check)
    return page(
        request,
        "audit.html",
        viewer,
        records=records,
        more=more,
        next_after=records[-1]["seq"] if records else after,
        filters={"actor": actor, "action": action, "subject": subject, "since": since},
        head=head,
        verification=verification,
        whole=projects is None,
    )


@router.get("/gate")
async def gate_decisions(request: Request, viewer: ViewerDep, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    try:
        projects = _reader(viewer)
    except AccessDenied as exc:
        return refusal_page(request, viewer, exc)
    database = viewer.parts.database

    def newest():
        from mirror.store.models import AuditRecord

        with database.reading() as session:
            query = select(AuditRecord.seq).where(AuditRecord.action == "gate.decision")
            if projects is not None:
                query = query.where(AuditRecord.project.in_(sorted(projects)))
            seqs = session.execute(query.order_by(AuditRecord.seq.desc()).limit(20)).scalars().all()
        if not seqs:
            return []
        records, _ = audit_page(database, AuditFilter(action="gate.decision", projects=projects), min(seqs) - 1, 20)
        return list(reversed(records))

    decisions = []
    for record in await run_in_threadpool(newest):
        details = record["details"] or {}
        findings = details.get("findings") or []
        ordered = sorted(findings, key=lambda f: {"fail": 0, "warn": 1}.get(f.get("level"), 2))
        decisions.append({"record": record, "details": details, "findings": ordered[:20], "total": len(findings)})
    return page(request, "gate.html", viewer, decisions=decisions)
