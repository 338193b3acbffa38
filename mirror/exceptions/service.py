"""Exception requests: create, decide, revoke, expire — each change and its audit record in one
transaction, and every refusal audited too.

Separation of duties: a request is decided by someone other than its requester, holding a role
that may decide for the request's project. Two simultaneous decisions: the conditional UPDATE
(`WHERE status = 'pending'`) lets exactly one through; the other gets 409 naming the outcome.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import String, select, type_coerce, update

from mirror.audit.log import append
from mirror.auth.roles import Permission, Principal
from mirror.exceptions.models import ExceptionCreate, ExceptionOut
from mirror.exceptions.prechecks import PrecheckContext, closure_grantable, is_clean, run_prechecks
from mirror.policy import Allowlist, Decision, Ecosystem, ExceptionGrant, UnknownEnvironment
from mirror.policy.loader import SCHEMAS
from mirror.store.db import Database
from mirror.store.models import ExceptionRequest
from mirror.webhooks import enqueue

log = logging.getLogger("airlock.exceptions")
SELF_SERVICE_ACTOR = "airlock:self-service"


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(str(detail))


def field_error(field: str, message: str) -> ApiError:
    return ApiError(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def to_out(row: ExceptionRequest) -> ExceptionOut:
    return ExceptionOut.model_validate(row, from_attributes=True)


class ExceptionService:
    def __init__(self, db: Database, allowlist: Callable[[], Allowlist], changed: Callable[[str], None],
                 precheck_context: Callable[[Allowlist], PrecheckContext], webhook_urls: list[str],
                 self_service: frozenset[str], max_days: int) -> None:
        self.db = db
        self._allowlist = allowlist
        self._changed = changed
        self._precheck_context = precheck_context
        self._webhook_urls = webhook_urls
        self.self_service = self_service
        self.max_days = max_days
        self._rendered: dict[int, tuple[tuple, str]] = {}

    # -- refusals --------------------------------------------------------------------------
    def deny(self, principal: Principal | None, action: str, subject: str, reason: str, project: str | None = None,
             status: int = 403) -> ApiError:
        """Audit a denied attempt (in its own transaction) and return the error to raise."""
        actor = principal.user if principal else "anonymous"
        with self.db.transaction() as session:
            append(session, actor, "access.denied", subject, {"attempted": action, "reason": reason,
                   "role": principal.role if principal else None, "status": status}, project=project)
        return ApiError(status, reason)

    def require(self, principal: Principal, permission: Permission, project: str | None, action: str, subject: str) -> None:
        if not principal.may(permission, project):
            where = f" for project {project}" if project and principal.scope(permission) else ""
            raise self.deny(principal, action, subject, f"role {principal.role} may not {permission.value}{where}", project)

    # -- create ----------------------------------------------------------------------------
    def create(self, principal: Principal, body: ExceptionCreate) -> ExceptionRequest:
        self.require(principal, Permission.REQUEST, body.project, "exception.request", f"project {body.project}")
        allowlist = self._allowlist()
        self._validate(body, allowlist)
        checks = run_prechecks(body.ecosystem, body.package, body.versions, self._precheck_context(allowlist), body.environments)
        now = now_utc()
        # self-service approves with the closure: what the package needs comes with it, audited as such
        auto = set(body.environments) <= self.self_service and is_clean(checks) and closure_grantable(checks)
        values = dict(ecosystem=body.ecosystem, package=body.package, versions=body.versions, environments=body.environments,
                      project=body.project, justification=body.justification, duration_days=body.duration_days,
                      requested_by=principal.user, requested_at=now, status="pending", prechecks=checks)
        table = ExceptionRequest.__table__
        with self.db.transaction() as session:
            # Core statements, not the ORM's unit of work: this is the API's hottest write.
            connection = session.connection()
            request_id = connection.execute(table.insert().values(values).returning(table.c.id)).scalar_one()
            record = append(session, principal.user, "exception.requested", f"exception {request_id}",
                            {"request": body.model_dump(), "prechecks": checks, "role": principal.role}, project=body.project)
            connection.execute(update(table).where(table.c.id == request_id).values(audit_id=record.seq))
            row = ExceptionRequest(id=request_id, audit_id=record.seq, **values)  # what the response shows
            enqueue(session, self._webhook_urls, "exception.created", to_out(row).model_dump(mode="json"))
            if auto:
                row = session.get(ExceptionRequest, request_id)  # a persistent row: the decision updates it
                self._mark_decided(session, row, SELF_SERVICE_ACTOR, True,
                                   "self-service: every pre-check passed for a self-service environment", now, self_service=True)
                self._grant_closure(session, row, SELF_SERVICE_ACTOR, now)
        if auto:
            self._changed(row.ecosystem)
        return row

    def _validate(self, body: ExceptionCreate, allowlist: Allowlist) -> None:
        ecosystem = Ecosystem(body.ecosystem)
        known = allowlist.environments(ecosystem)
        unknown = [env for env in body.environments if env not in known]
        if unknown:
            raise field_error("environments", f"unknown environment {unknown[0]!r} for {ecosystem.value} (known: {', '.join(known) or 'none'})")
        if body.duration_days > self.max_days:
            raise field_error("duration_days", f"at most {self.max_days} days (AIRLOCK_MAX_EXCEPTION_DAYS); ask again when it ends")
        if ecosystem is Ecosystem.CONDA and body.versions:
            raise field_error("versions", "omit 'versions' for conda: put the version in the MatchSpec, e.g. \"lightgbm >=4.3\"")
        if ecosystem is Ecosystem.CONTAINERS and not body.versions:
            raise field_error("versions", "name a tag glob (\"2024*\") or a digest (sha256:…) of the image")
        grant = ExceptionGrant("new", ecosystem, body.package, body.versions, frozenset(body.environments), now_utc(), "-")
        try:
            target = SCHEMAS[ecosystem].grant_target(grant)
        except ValueError as exc:
            field = "versions" if "specifier" in str(exc) or "tag" in str(exc) else "package"
            raise field_error(field, f"{exc}; e.g. {_EXAMPLES[ecosystem]}") from None
        for env in body.environments:
            decision = _already_allowed(allowlist, ecosystem, env, target.name, body)
            if decision is not None and decision.allowed:
                raise ApiError(409, f"already allowed in {env}: {decision.reason}")

    # -- read ------------------------------------------------------------------------------
    def list(self, principal: Principal, status: str | None, project: str | None, ecosystem: str | None,
             limit: int, offset: int) -> str:
        """The requests as a JSON array (same fields as `ExceptionOut`), newest first.

        The list is the API's hottest read and rows are mostly immutable: the query fetches only
        ids and the columns a decision changes, and each row's JSON is rendered once and reused
        while those columns stay the same (other replicas' changes included)."""
        scope = principal.scope(Permission.READ_REQUESTS)
        if scope is None:
            raise self.deny(principal, "exception.list", "exceptions", f"role {principal.role} may not read requests")
        table = ExceptionRequest.__table__
        # The mutable columns are only compared, never shown: read them untyped, so SQLite's
        # DateTime parsing (most of this query's cost at 100 rows) is skipped.
        fingerprint = [type_coerce(table.c[name], String) for name in _MUTABLE]
        query = select(table.c.id, *fingerprint).order_by(table.c.id.desc()).limit(limit).offset(offset)
        if scope.name == "OWN":
            if project is not None and project not in principal.projects:
                raise self.deny(principal, "exception.list", f"project {project}", f"role {principal.role} may read requests of its own projects only", project)
            query = query.where(table.c.project.in_(sorted(principal.projects)))
        for column, value in ((table.c.status, status), (table.c.project, project), (table.c.ecosystem, ecosystem)):
            if value is not None:
                query = query.where(column == value)
        # Two statements without a snapshot: a row changed between them is cached with the older
        # fingerprint and so rendered again on the next list.
        with self.db.reading(snapshot=False) as session:
            states = session.execute(query).all()
            stale = {row[0]: tuple(row[1:]) for row in states if self._rendered.get(row[0], (None,))[0] != tuple(row[1:])}
            if stale:
                for row in session.execute(select(table).where(table.c.id.in_(stale))).mappings():
                    self._rendered[row["id"]] = (stale[row["id"]], _row_json(row))
        if len(self._rendered) > 50_000:
            keep = {row[0] for row in states}
            self._rendered = {k: v for k, v in self._rendered.items() if k in keep}
        return "[" + ",".join(self._rendered[row[0]][1] for row in states) + "]"

    def get(self, principal: Principal, request_id: int) -> ExceptionRequest:
        with self.db.reading(snapshot=False) as session:
            row = session.get(ExceptionRequest, request_id)
        if row is None:
            raise ApiError(404, f"no exception request {request_id}")
        self.require(principal, Permission.READ_REQUESTS, row.project, "exception.read", f"exception {request_id}")
        return row

    # -- decide, revoke --------------------------------------------------------------------
    def decide(self, principal: Principal, request_id: int, approve: bool, comment: str, with_closure: bool = False) -> ExceptionRequest:
        action = "exception.approve" if approve else "exception.reject"
        row = self._load(request_id)
        self.require(principal, Permission.DECIDE, row.project, action, f"exception {request_id}")
        if row.requested_by == principal.user:
            raise self.deny(principal, action, f"exception {request_id}",
                            "separation of duties: you requested this exception; another person with an approving role must decide", row.project)
        if approve and with_closure and not closure_grantable(row.prechecks):
            raise ApiError(409, f"exception {request_id}'s closure was not computed or includes a denied package "
                                "(see its closure pre-check): approve without with_closure, and request what it needs separately")
        now = now_utc()
        with self.db.transaction() as session:
            won = session.execute(update(ExceptionRequest).where(ExceptionRequest.id == request_id, ExceptionRequest.status == "pending")
                                  .values(status="deciding")).rowcount
            if not won:
                current = session.get(ExceptionRequest, request_id)
                raise ApiError(409, f"exception {request_id} is already {current.status}" + (f" by {current.decided_by}" if current.decided_by else ""))
            row = session.get(ExceptionRequest, request_id)
            session.refresh(row)
            self._mark_decided(session, row, principal.user, approve, comment, now, role=principal.role)
            if approve and with_closure:
                self._grant_closure(session, row, principal.user, now, role=principal.role)
        if approve:
            self._changed(row.ecosystem)
        return row

    def _grant_closure(self, session, parent: ExceptionRequest, actor: str, now: datetime, role: str | None = None) -> None:
        """One approved grant per package the closure pre-check listed, ending with `parent`; each audited."""
        found = [check for check in parent.prechecks if check["name"] == "closure" and check.get("packages")]
        for package in found[0]["packages"] if found else ():
            versions = None
            if parent.ecosystem == "pypi":
                from mirror.closure.interface import requirement_specifier

                versions = requirement_specifier(package["requirement"]) or None
            child = ExceptionRequest(
                ecosystem=parent.ecosystem, package=package["package"] if parent.ecosystem == "pypi" else package["requirement"],
                versions=versions, environments=parent.environments, project=parent.project,
                justification=f"dependency of {parent.package} ({' → '.join(package['required_by'])}), granted with exception {parent.id}",
                duration_days=parent.duration_days, requested_by=parent.requested_by, requested_at=now, status="approved",
                prechecks=[], decided_by=actor, decided_at=now, decision_comment=f"approved with the closure of exception {parent.id}",
                expires_at=parent.expires_at, parent_id=parent.id)
            session.add(child)
            session.flush()
            record = append(session, actor, "exception.approved", f"exception {child.id}",
                            {"comment": child.decision_comment, "role": role, "closure_of": parent.id, "requirement": package["requirement"],
                             "expires_at": child.expires_at.isoformat() if child.expires_at else None}, project=parent.project)
            child.audit_id = record.seq

    def revoke(self, principal: Principal, request_id: int, comment: str) -> ExceptionRequest:
        row = self._load(request_id)
        self.require(principal, Permission.REVOKE, row.project, "exception.revoke", f"exception {request_id}")
        now = now_utc()
        with self.db.transaction() as session:
            won = session.execute(update(ExceptionRequest).where(ExceptionRequest.id == request_id, ExceptionRequest.status == "approved")
                                  .values(status="revoked", revoked_by=principal.user, revoked_at=now)).rowcount
            if not won:
                current = session.get(ExceptionRequest, request_id)
                raise ApiError(409, f"only an approved exception can be revoked; exception {request_id} is {current.status}")
            row = session.get(ExceptionRequest, request_id)
            session.refresh(row)
            append(session, principal.user, "exception.revoked", f"exception {request_id}",
                   {"comment": comment, "role": principal.role}, project=row.project)
            for child in session.execute(select(ExceptionRequest).where(ExceptionRequest.parent_id == request_id,
                                                                        ExceptionRequest.status == "approved")).scalars():
                child.status, child.revoked_by, child.revoked_at = "revoked", principal.user, now
                append(session, principal.user, "exception.revoked", f"exception {child.id}",
                       {"comment": f"revoked with exception {request_id}: {comment}", "role": principal.role}, project=row.project)
            enqueue(session, self._webhook_urls, "exception.revoked", to_out(row).model_dump(mode="json"))
        self._changed(row.ecosystem)
        return row

    def _load(self, request_id: int) -> ExceptionRequest:
        with self.db.reading(snapshot=False) as session:
            row = session.get(ExceptionRequest, request_id)
        if row is None:
            raise ApiError(404, f"no exception request {request_id}")
        return row

    def _mark_decided(self, session, row: ExceptionRequest, actor: str, approve: bool, comment: str, now: datetime,
                      self_service: bool = False, role: str | None = None) -> None:
        row.status = "approved" if approve else "rejected"
        row.decided_by, row.decided_at, row.decision_comment = actor, now, comment
        if approve:
            row.expires_at = now + timedelta(days=row.duration_days)
        append(session, actor, f"exception.{row.status}", f"exception {row.id}",
               {"comment": comment, "role": role, "self_service": self_service,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None}, project=row.project)
        enqueue(session, self._webhook_urls, "exception.decided", to_out(row).model_dump(mode="json"))

    # -- the policy's view -----------------------------------------------------------------
    def grants(self) -> list[ExceptionGrant]:
        """Approved exceptions for the allowlist; ones past their end are marked and audited now."""
        now = now_utc()
        with self.db.transaction() as session:
            due = session.execute(select(ExceptionRequest).where(ExceptionRequest.status == "approved",
                                                                 ExceptionRequest.expires_at <= now)).scalars().all()
            for row in due:
                won = session.execute(update(ExceptionRequest).where(ExceptionRequest.id == row.id, ExceptionRequest.status == "approved")
                                      .values(status="expired")).rowcount
                if won:
                    append(session, "airlock", "exception.expired", f"exception {row.id}",
                           {"expires_at": row.expires_at.isoformat()}, project=row.project)
            rows = session.execute(select(ExceptionRequest).where(ExceptionRequest.status.in_(("approved", "expired")))).scalars().all()
        return [ExceptionGrant(str(r.id), Ecosystem(r.ecosystem), r.package, r.versions, frozenset(r.environments),
                               r.expires_at, r.decided_by or "?", r.project) for r in rows if r.expires_at is not None]

    def counts_by_state(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.db.reading(snapshot=False) as session:
            rows = session.execute(select(ExceptionRequest.status, func.count()).group_by(ExceptionRequest.status)).all()
        counts = {state: 0 for state in ("pending", "approved", "rejected", "revoked", "expired")}
        counts.update({status: count for status, count in rows})
        return counts

    def fingerprint(self) -> tuple:
        """Changes whenever the set of approved exceptions may have changed (for other replicas)."""
        with self.db.reading(snapshot=False) as session:
            rows = session.execute(select(ExceptionRequest.id, ExceptionRequest.status, ExceptionRequest.expires_at)
                                   .where(ExceptionRequest.status.in_(("approved", "revoked", "expired")))).all()
        return tuple(sorted(rows))


_MUTABLE = ("status", "decided_by", "decided_at", "decision_comment", "expires_at", "revoked_by", "revoked_at")


def _row_json(row) -> str:
    return json.dumps(dict(row), default=_json_value, separators=(",", ":"))


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as pydantic writes UTC in the other routes
    raise TypeError(f"cannot serialise {type(value).__name__}")


_EXAMPLES = {
    Ecosystem.PYPI: 'package "lightgbm", versions ">=4.3,<5"',
    Ecosystem.CONDA: 'package "lightgbm >=4.3"',
    Ecosystem.CONTAINERS: 'package "mar/azureml/openmpi4.1.0-ubuntu22.04", versions "2024*"',
}
_EXACT_PIN = re.compile(r"^==\s*([A-Za-z0-9.+!_-]+)$")


def _already_allowed(allowlist: Allowlist, ecosystem: Ecosystem, env: str, name: str, body: ExceptionCreate) -> Decision | None:
    """The rule that already admits the request, when the request names one version or tag."""
    try:
        if ecosystem is Ecosystem.PYPI:
            pin = _EXACT_PIN.match(body.versions or "")
            if pin:
                return allowlist.decide(ecosystem, env, name, pin.group(1))
            return None
        if ecosystem is Ecosystem.CONTAINERS and body.versions and not set(body.versions) & set("*?["):
            return allowlist.decide(ecosystem, env, name, body.versions)
    except UnknownEnvironment:
        return None
    return None
