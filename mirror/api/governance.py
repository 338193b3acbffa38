"""`/api/v1/allowlists`, `/api/v1/audit`, `/api/v1/gate/decisions`, `/api/v1/tokens`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import Text, cast, func, select

from mirror.audit.log import append, as_dict
from mirror.auth.deps import PrincipalDep, ServiceDep
from mirror.auth.roles import Permission
from mirror.auth.tokens import TokenError, create_token, list_tokens, parse_duration, revoke_token
from mirror.exceptions.models import AllowlistOut, AuditOut, ErrorOut, GateDecisionIn, GrantOut, RuleOut, TokenCreate, TokenOut
from mirror.exceptions.service import ApiError, field_error
from mirror.policy import Ecosystem, UnknownEnvironment
from mirror.store.models import AuditRecord, ExceptionRequest
from mirror.observability import GATE_OUTCOMES
from mirror.webhooks import enqueue, gate_decision_event

router = APIRouter(prefix="/api/v1")
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}}
AUDIT_PAGE_BYTES = 16 * 2**20
"""Details per `/api/v1/audit` page: 200 gate decisions of an ML image would be gigabytes in memory."""


@router.get("/allowlists/{ecosystem}/{env}", response_model=AllowlistOut, responses=ERRORS, tags=["allowlists"],
            summary="The effective allowlist: files plus approved, unexpired exceptions, minus deny")
def effective_allowlist(ecosystem: Ecosystem, env: str, request: Request, principal: PrincipalDep, service: ServiceDep) -> AllowlistOut:
    service.require(principal, Permission.READ_ALLOWLISTS, None, "allowlist.read", f"allowlist {ecosystem.value}/{env}")
    allowlist = request.app.state.policy.current()
    try:
        rules = list(allowlist.rules(ecosystem, env))
    except UnknownEnvironment as exc:
        raise ApiError(404, str(exc)) from None
    lineage = set(allowlist.policy.files[ecosystem].lineage(env))
    now = datetime.now(timezone.utc)
    with service.db.reading() as session:
        granted = session.execute(select(ExceptionRequest).where(
            ExceptionRequest.ecosystem == ecosystem.value, ExceptionRequest.status == "approved",
            ExceptionRequest.expires_at > now)).scalars().all()
        exceptions = [GrantOut(id=str(row.id), package=row.package, versions=row.versions, environments=row.environments,
                               expires_at=row.expires_at, approved_by=row.decided_by or "?", project=row.project)
                      for row in granted if lineage & set(row.environments)]
    return AllowlistOut(ecosystem=ecosystem.value, environment=env, generation=allowlist.generation, exceptions=exceptions, rules=[
        RuleOut(name=rule.name, allows=rule.matcher.description, state=state, rule=str(rule.origin), reason=rule.reason,
                owner=rule.owner, expires=rule.expiry_text if rule.expires_at else None, channel=rule.channel)
        for rule, state in rules])


@router.get("/audit", response_model=list[AuditOut], responses=ERRORS, tags=["audit"], summary="Audit records, oldest first")
def audit(
    principal: PrincipalDep, service: ServiceDep,
    action: Annotated[str | None, Query(max_length=60)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    project: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    *, request: Request, response: Response,
) -> list[AuditOut]:
    """A page is at most `limit` records and about AUDIT_PAGE_BYTES of details (a gate decision
    carries every finding: megabytes each); when more may follow, `Link: <…&after_seq=N>; rel="next"`."""
    scope = principal.scope(Permission.READ_AUDIT)
    if scope is None or (scope.name == "OWN" and project is not None and project not in principal.projects):
        raise service.deny(principal, "audit.read", "audit", f"role {principal.role} may not read the audit log" +
                           (" of that project" if scope else ""), project)
    conditions = [AuditRecord.seq > after_seq]
    if scope.name == "OWN":
        conditions.append(AuditRecord.project.in_(sorted(principal.projects)))
    for column, value in ((AuditRecord.action, action), (AuditRecord.actor, actor), (AuditRecord.subject, subject), (AuditRecord.project, project)):
        if value is not None:
            conditions.append(column == value)
    if since is not None:
        conditions.append(AuditRecord.at >= since)
    if until is not None:
        conditions.append(AuditRecord.at < until)
    with service.db.reading() as session:
        sizes = session.execute(select(AuditRecord.seq, func.length(cast(AuditRecord.details, Text))).where(*conditions)
                                .order_by(AuditRecord.seq).limit(limit)).all()
        last = _page_end(sizes)
        records = session.execute(select(AuditRecord).where(*conditions, AuditRecord.seq <= last).order_by(AuditRecord.seq)).scalars() if last else []
        page = [AuditOut(**as_dict(record)) for record in records]
    if page and (len(page) < len(sizes) or len(sizes) == limit):
        response.headers["Link"] = f'<{request.url.include_query_params(after_seq=page[-1].seq)}>; rel="next"'
    return page


def _page_end(sizes: list[tuple[int, int | None]]) -> int:
    """The last sequence number of a page (0: none): records while their details fit AUDIT_PAGE_BYTES, one at least."""
    total, last = 0, 0
    for seq, size in sizes:
        total += size or 0
        if total > AUDIT_PAGE_BYTES and last:
            break
        last = seq
    return last


@router.post("/gate/decisions", status_code=201, responses=ERRORS, tags=["gate"], summary="The gate reports a decision")
def gate_decision(body: GateDecisionIn, principal: PrincipalDep, service: ServiceDep, request: Request) -> dict[str, int]:
    service.require(principal, Permission.POST_GATE, None, "gate.decision", body.image)
    GATE_OUTCOMES.labels(body.decision).inc()
    decision = body.model_dump(mode="json")
    with service.db.transaction() as session:
        record = append(session, principal.user, "gate.decision", body.image, decision)
        enqueue(session, request.app.state.webhook_urls, "gate.decision", gate_decision_event(decision, record.seq))
    return {"audit_id": record.seq}


def _token_out(row, token: str | None = None) -> TokenOut:
    return TokenOut(id=row.id, user=row.user, role=row.role, projects=row.projects, created_at=row.created_at,
                    expires_at=row.expires_at, revoked_at=row.revoked_at, token=token)


@router.post("/tokens", status_code=201, response_model=TokenOut, responses=ERRORS, tags=["tokens"])
def new_token(body: TokenCreate, principal: PrincipalDep, service: ServiceDep) -> TokenOut:
    service.require(principal, Permission.MANAGE_TOKENS, None, "token.create", f"token for {body.user}")
    try:
        with service.db.transaction() as session:
            token, row = create_token(session, body.user, body.role, body.projects, parse_duration(body.expires_in), actor=principal.user)
    except TokenError as exc:
        raise field_error("role" if "role" in str(exc) else "projects", str(exc)) from None
    return _token_out(row, token)


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS, tags=["tokens"])
def tokens(principal: PrincipalDep, service: ServiceDep) -> list[TokenOut]:
    service.require(principal, Permission.MANAGE_TOKENS, None, "token.list", "tokens")
    with service.db.reading() as session:
        return [_token_out(row) for row in list_tokens(session)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS, tags=["tokens"])
def delete_token(token_id: Annotated[str, Path(max_length=16)], principal: PrincipalDep, service: ServiceDep) -> TokenOut:
    service.require(principal, Permission.MANAGE_TOKENS, None, "token.revoke", f"token {token_id}")
    with service.db.transaction() as session:
        row = revoke_token(session, token_id, actor=principal.user)
    if row is None:
        raise ApiError(404, f"no token {token_id}")
    return _token_out(row)
