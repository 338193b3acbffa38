"""`/api/v1/allowlists`, `/api/v1/audit`, `/api/v1/gate/decisions`, `/api/v1/tokens`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from mirror.api.errors import ApiError, field_error
from mirror.api.models import AllowlistOut, AuditOut, ErrorOut, GateDecisionIn, GrantOut, RuleOut, TokenCreate, TokenOut
from mirror.audit.reads import AuditFilter, audit_page
from mirror.auth.deps import AccessDep, PrincipalDep
from mirror.auth.roles import ROLES, SERVER_MINTED_ROLES, Permission, may_mint
from mirror.auth.tokens import TokenError, create_token, list_tokens, parse_duration, revoke_token
from mirror.exception_requests.store import grants_in_force
from mirror.gate_decisions import record_gate_decision
from mirror.parts import AllowlistDep, PartsDep
from mirror.policy import Ecosystem, UnknownEnvironment

router = APIRouter(prefix="/api/v1")
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get(
    "/allowlists/{ecosystem}/{env}",
    response_model=AllowlistOut,
    responses=ERRORS,
    tags=["allowlists"],
    summary="The effective allowlist: files plus approved, unexpired exceptions, minus deny",
)
def effective_allowlist(
    ecosystem: Ecosystem, env: str, principal: PrincipalDep, access: AccessDep, allowlist: AllowlistDep
) -> AllowlistOut:
    access.require(principal, Permission.READ_ALLOWLISTS, None, "allowlist.read", f"allowlist {ecosystem.value}/{env}")
    try:
        rules = list(allowlist.rules(ecosystem, env))
    except UnknownEnvironment as exc:
        raise ApiError(404, str(exc)) from None
    lineage = set(allowlist.policy.files[ecosystem].lineage(env))
    exceptions = [
        GrantOut(
            id=str(row.id),
            package=row.package,
            versions=row.versions,
            environments=row.environments,
            expires_at=row.expires_at,
            approved_by=row.decided_by or "?",
            project=row.project,
        )
        for row in grants_in_force(access.database, ecosystem, lineage)
    ]
    return AllowlistOut(
        ecosystem=ecosystem.value,
        environment=env,
        generation=allowlist.generation,
        exceptions=exceptions,
        rules=[
            RuleOut(
                name=rule.name,
                allows=rule.matcher.description,
                state=state,
                rule=str(rule.origin),
                reason=rule.reason,
                owner=rule.owner,
                expires=rule.expiry_text if rule.expires_at else None,
                channel=rule.channel,
            )
            for rule, state in rules
        ],
    )


@router.get(
    "/audit", response_model=list[AuditOut], responses=ERRORS, tags=["audit"], summary="Audit records, oldest first"
)
def audit(
    principal: PrincipalDep,
    access: AccessDep,
    action: Annotated[str | None, Query(max_length=60)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    project: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    *,
    request: Request,
    response: Response,
) -> list[AuditOut]:
    """A page is at most `limit` records and about 16 MiB of details (a gate decision carries every
    finding: megabytes each); when more may follow, `Link: <…&after_seq=N>; rel="next"`."""
    scope = principal.scope(Permission.READ_AUDIT)
    if scope is None or (scope.name == "OWN" and project is not None and project not in principal.projects):
        raise access.deny(
            principal,
            "audit.read",
            "audit",
            f"role {principal.role} may not read the audit log" + (" of that project" if scope else ""),
            project,
        )
    where = AuditFilter(
        action, actor, subject, project, since, until, principal.projects if scope.name == "OWN" else None
    )
    records, more = audit_page(access.database, where, after_seq, limit)
    page = [AuditOut(**record) for record in records]
    if more:
        response.headers["Link"] = f'<{request.url.include_query_params(after_seq=page[-1].seq)}>; rel="next"'
    return page


@router.post("/gate/decisions", status_code=201, responses=ERRORS, tags=["gate"], summary="The gate reports a decision")
def gate_decision(body: GateDecisionIn, principal: PrincipalDep, access: AccessDep, parts: PartsDep) -> dict[str, int]:
    access.require(principal, Permission.POST_GATE, None, "gate.decision", body.image)
    return {
        "audit_id": record_gate_decision(
            access.database, principal.user, body.model_dump(mode="json"), parts.settings.webhook_url_list
        )
    }


def _token_out(row, token: str | None = None) -> TokenOut:
    return TokenOut(
        id=row.id,
        user=row.user,
        role=row.role,
        projects=row.projects,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        token=token,
    )


@router.post("/tokens", status_code=201, response_model=TokenOut, responses=ERRORS, tags=["tokens"])
def new_token(body: TokenCreate, principal: PrincipalDep, access: AccessDep, parts: PartsDep) -> TokenOut:
    access.require(principal, Permission.MANAGE_TOKENS, None, "token.create", f"token for {body.user}")
    if not may_mint(principal, body.role):
        raise access.deny(
            principal,
            "token.create",
            f"token for {body.user}",
            f"a {body.role} token can approve requests or mint tokens: only the server's operator creates one, "
            f"with `airlock token create --role {body.role}` on the server; the API mints only "
            + ", ".join(role for role in ROLES if role not in SERVER_MINTED_ROLES),
        )
    try:
        with access.database.transaction() as session:
            token, row = create_token(
                session,
                body.user,
                body.role,
                body.projects,
                parse_duration(body.expires_in),
                actor=principal.user,
                max_days=parts.settings.token_max_days,
                via="api",
            )
    except TokenError as exc:
        raise field_error(exc.field, str(exc)) from None
    return _token_out(row, token)


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS, tags=["tokens"])
def tokens(principal: PrincipalDep, access: AccessDep) -> list[TokenOut]:
    access.require(principal, Permission.MANAGE_TOKENS, None, "token.list", "tokens")
    with access.database.reading() as session:
        return [_token_out(row) for row in list_tokens(session)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS, tags=["tokens"])
def delete_token(token_id: Annotated[str, Path(max_length=16)], principal: PrincipalDep, access: AccessDep) -> TokenOut:
    access.require(principal, Permission.MANAGE_TOKENS, None, "token.revoke", f"token {token_id}")
    with access.database.transaction() as session:
        row = revoke_token(session, token_id, actor=principal.user)
    if row is None:
        raise ApiError(404, f"no token {token_id}")
    return _token_out(row)
