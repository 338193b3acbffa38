"""The exception-request workflow: request, decide, revoke — each change and its audit record in
one transaction, and every refused attempt audited (by `AccessControl`).

Separation of duties: a request is decided by someone other than its requester, holding a role
that may decide for the request's project. Two simultaneous decisions: the conditional UPDATE
(`WHERE status = 'pending'`) lets exactly one through; the other is refused naming the outcome.
Refusals are the workflow's own types (`errors.py`); the API maps them to HTTP.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from mirror.audit.log import append
from mirror.auth.access import AccessControl
from mirror.auth.roles import Permission, Principal
from mirror.clock import utc_now
from mirror.exception_requests.errors import InvalidRequest, RequestConflict, RequestNotFound
from mirror.exception_requests.prechecks import (
    Precheck,
    PrecheckContext,
    closure_grantable,
    closure_packages,
    is_clean,
    run_prechecks,
)
from mirror.exception_requests.reads import RequestReads
from mirror.exception_requests.store import request_payload
from mirror.policy import Allowlist, Decision, Ecosystem, ExceptionGrant, InvalidGrant, UnknownEnvironment
from mirror.policy.loader import SCHEMAS
from mirror.store.db import Database
from mirror.store.models import ExceptionRequest
from mirror.webhooks import enqueue

log = logging.getLogger("airlock.exceptions")
SELF_SERVICE_ACTOR = "airlock:self-service"


@dataclass(frozen=True)
class NewRequest:
    """What a requester asks for (the API validated its shape; the workflow judges its content)."""

    ecosystem: str
    package: str
    versions: str | None
    environments: list[str]
    project: str
    justification: str
    duration_days: int
    waive: tuple[str, ...] = ()
    """Conditions to waive for the named versions, once approved."""


class ExceptionRequests(RequestReads):
    def __init__(
        self,
        database: Database,
        access: AccessControl,
        allowlist: Callable[[], Allowlist],
        changed: Callable[[str], None],
        prechecks: Callable[[Allowlist], PrecheckContext],
        webhook_urls: list[str],
        self_service: frozenset[str],
        max_days: int,
    ) -> None:
        self.database = database
        self.access = access
        self._allowlist = allowlist
        self._changed = changed
        self._prechecks = prechecks
        self._webhook_urls = webhook_urls
        self.self_service = self_service
        self.max_days = max_days
        self._rendered: dict[int, tuple[tuple, str]] = {}

    # -- request ---------------------------------------------------------------------------
    def create(self, principal: Principal, new: NewRequest) -> ExceptionRequest:
        self.access.require(principal, Permission.REQUEST, new.project, "exception.request", f"project {new.project}")
        allowlist = self._allowlist()
        self._validate(new, allowlist)
        checks = run_prechecks(new.ecosystem, new.package, new.versions, self._prechecks(allowlist), new.environments)
        now = utc_now()
        # self-service approves with the closure: what the package needs comes with it, audited as such
        auto = set(new.environments) <= self.self_service and is_clean(checks) and closure_grantable(checks)
        stored_checks = [check.as_dict() for check in checks]
        values = dict(
            ecosystem=new.ecosystem,
            package=new.package,
            versions=new.versions,
            environments=new.environments,
            project=new.project,
            justification=new.justification,
            duration_days=new.duration_days,
            waives=list(new.waive) or None,
            requested_by=principal.user,
            requested_at=now,
            status="pending",
            prechecks=stored_checks,
        )
        table = ExceptionRequest.__table__
        with self.database.transaction() as session:
            # Core statements, not the ORM's unit of work: this is the API's hottest write.
            connection = session.connection()
            request_id = connection.execute(table.insert().values(values).returning(table.c.id)).scalar_one()
            record = append(
                session,
                principal.user,
                "exception.requested",
                f"exception {request_id}",
                {"request": asdict(new), "prechecks": stored_checks, "role": principal.role},
                project=new.project,
            )
            connection.execute(update(table).where(table.c.id == request_id).values(audit_id=record.seq))
            row = ExceptionRequest(id=request_id, audit_id=record.seq, **values)  # what the answer shows
            enqueue(session, self._webhook_urls, "exception.created", request_payload(row))
            if auto:
                row = session.get(ExceptionRequest, request_id)  # a persistent row: the decision updates it
                self._mark_decided(
                    session,
                    row,
                    SELF_SERVICE_ACTOR,
                    True,
                    "self-service: every pre-check passed for a self-service environment",
                    now,
                    self_service=True,
                )
                self._grant_closure(session, row, SELF_SERVICE_ACTOR, now)
        if auto:
            self._changed(row.ecosystem)
        return row

    def _validate(self, new: NewRequest, allowlist: Allowlist) -> None:
        ecosystem = Ecosystem(new.ecosystem)
        known = allowlist.environments(ecosystem)
        unknown = [env for env in new.environments if env not in known]
        if unknown:
            raise InvalidRequest(
                "environments",
                f"unknown environment {unknown[0]!r} for {ecosystem.value} (known: {', '.join(known) or 'none'})",
            )
        if new.duration_days > self.max_days:
            raise InvalidRequest(
                "duration_days", f"at most {self.max_days} days (AIRLOCK_MAX_EXCEPTION_DAYS); ask again when it ends"
            )
        if ecosystem is Ecosystem.CONDA and new.versions:
            raise InvalidRequest(
                "versions", "omit 'versions' for conda: put the version in the MatchSpec, e.g. \"lightgbm >=4.3\""
            )
        if ecosystem is Ecosystem.CONTAINERS and not new.versions:
            raise InvalidRequest("versions", 'name a tag glob ("2024*") or a digest (sha256:…) of the image')
        grant = ExceptionGrant("new", ecosystem, new.package, new.versions, frozenset(new.environments), utc_now(), "-")
        try:
            target = SCHEMAS[ecosystem].grant_target(grant)
        except InvalidGrant as exc:
            raise InvalidRequest(exc.field, f"{exc}; e.g. {_EXAMPLES[ecosystem]}") from None
        if new.waive:
            if ecosystem is Ecosystem.CONTAINERS:
                raise InvalidRequest("waive", "images have no conditions to waive (the gate judges them)")
            if ecosystem is Ecosystem.PYPI and not _EXACT_PIN.match((new.versions or "").strip()):
                raise InvalidRequest("waive", "a waiver names the version it is for: give versions as ==X.Y")
            return  # the version may well be allowed by an entry: the waiver is what is asked
        for env in new.environments:
            decision = _already_allowed(allowlist, ecosystem, env, target.name, new)
            if decision is not None and decision.allowed:
                raise RequestConflict(f"already allowed in {env}: {decision.reason}")

    def preview(self, principal: Principal, new: NewRequest) -> list[Precheck]:
        """What the pre-checks say of a request before it is made (nothing is stored)."""
        self.access.require(principal, Permission.REQUEST, new.project, "exception.preview", f"project {new.project}")
        allowlist = self._allowlist()
        self._validate(new, allowlist)
        return run_prechecks(new.ecosystem, new.package, new.versions, self._prechecks(allowlist), new.environments)

    def get(self, principal: Principal, request_id: int) -> ExceptionRequest:
        row = self._load(request_id)
        self.access.require(
            principal, Permission.READ_REQUESTS, row.project, "exception.read", f"exception {request_id}"
        )
        return row

    # -- decide, revoke --------------------------------------------------------------------
    def record_decision(
        self, principal: Principal, request_id: int, approve: bool, comment: str, with_closure: bool = False
    ) -> ExceptionRequest:
        """Approve or reject a pending request (with its closure, when asked and grantable)."""
        action = "exception.approve" if approve else "exception.reject"
        row = self._load(request_id)
        self.access.require(principal, Permission.DECIDE, row.project, action, f"exception {request_id}")
        if row.requested_by == principal.user:
            raise self.access.deny(
                principal,
                action,
                f"exception {request_id}",
                "separation of duties: you requested this exception; another person with an approving role must decide",
                row.project,
            )
        if approve and with_closure and not closure_grantable([Precheck.from_dict(c) for c in row.prechecks]):
            raise RequestConflict(
                f"exception {request_id}'s closure was not computed or includes a denied package "
                "(see its closure pre-check): approve without with_closure, and request what it needs separately"
            )
        now = utc_now()
        with self.database.transaction() as session:
            won = session.execute(
                update(ExceptionRequest)
                .where(ExceptionRequest.id == request_id, ExceptionRequest.status == "pending")
                .values(status="deciding")
            ).rowcount
            if not won:
                current = session.get(ExceptionRequest, request_id)
                raise RequestConflict(
                    f"exception {request_id} is already {current.status}"
                    + (f" by {current.decided_by}" if current.decided_by else "")
                )
            row = session.get(ExceptionRequest, request_id)
            session.refresh(row)
            self._mark_decided(session, row, principal.user, approve, comment, now, role=principal.role)
            if approve and with_closure:
                self._grant_closure(session, row, principal.user, now, role=principal.role)
        if approve:
            self._changed(row.ecosystem)
        return row

    def revoke(self, principal: Principal, request_id: int, comment: str) -> ExceptionRequest:
        row = self._load(request_id)
        self.access.require(principal, Permission.REVOKE, row.project, "exception.revoke", f"exception {request_id}")
        now = utc_now()
        with self.database.transaction() as session:
            won = session.execute(
                update(ExceptionRequest)
                .where(ExceptionRequest.id == request_id, ExceptionRequest.status == "approved")
                .values(status="revoked", revoked_by=principal.user, revoked_at=now)
            ).rowcount
            if not won:
                current = session.get(ExceptionRequest, request_id)
                raise RequestConflict(
                    f"only an approved exception can be revoked; exception {request_id} is {current.status}"
                )
            row = session.get(ExceptionRequest, request_id)
            session.refresh(row)
            append(
                session,
                principal.user,
                "exception.revoked",
                f"exception {request_id}",
                {"comment": comment, "role": principal.role},
                project=row.project,
            )
            for child in session.execute(
                select(ExceptionRequest).where(
                    ExceptionRequest.parent_id == request_id, ExceptionRequest.status == "approved"
                )
            ).scalars():
                child.status, child.revoked_by, child.revoked_at = "revoked", principal.user, now
                append(
                    session,
                    principal.user,
                    "exception.revoked",
                    f"exception {child.id}",
                    {"comment": f"revoked with exception {request_id}: {comment}", "role": principal.role},
                    project=row.project,
                )
            enqueue(session, self._webhook_urls, "exception.revoked", request_payload(row))
        self._changed(row.ecosystem)
        return row

    def _load(self, request_id: int) -> ExceptionRequest:
        with self.database.reading(snapshot=False) as session:
            row = session.get(ExceptionRequest, request_id)
        if row is None:
            raise RequestNotFound(f"no exception request {request_id}")
        return row

    def _mark_decided(
        self,
        session,
        row: ExceptionRequest,
        actor: str,
        approve: bool,
        comment: str,
        now: datetime,
        self_service: bool = False,
        role: str | None = None,
    ) -> None:
        row.status = "approved" if approve else "rejected"
        row.decided_by, row.decided_at, row.decision_comment = actor, now, comment
        if approve:
            row.expires_at = now + timedelta(days=row.duration_days)
        append(
            session,
            actor,
            f"exception.{row.status}",
            f"exception {row.id}",
            {
                "comment": comment,
                "role": role,
                "self_service": self_service,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            },
            project=row.project,
        )
        enqueue(session, self._webhook_urls, "exception.decided", request_payload(row))

    def _grant_closure(
        self, session, parent: ExceptionRequest, actor: str, now: datetime, role: str | None = None
    ) -> None:
        """One approved grant per package the closure pre-check listed, ending with `parent`; each audited."""
        for package in closure_packages([Precheck.from_dict(c) for c in parent.prechecks]):
            versions = None
            if parent.ecosystem == "pypi":
                from mirror.closure.interface import requirement_specifier

                versions = requirement_specifier(package["requirement"]) or None
            child = ExceptionRequest(
                ecosystem=parent.ecosystem,
                package=package["package"] if parent.ecosystem == "pypi" else package["requirement"],
                versions=versions,
                environments=parent.environments,
                project=parent.project,
                justification=f"dependency of {parent.package} ({' → '.join(package['required_by'])}), granted with exception {parent.id}",
                duration_days=parent.duration_days,
                requested_by=parent.requested_by,
                requested_at=now,
                status="approved",
                prechecks=[],
                decided_by=actor,
                decided_at=now,
                decision_comment=f"approved with the closure of exception {parent.id}",
                expires_at=parent.expires_at,
                parent_id=parent.id,
            )
            session.add(child)
            session.flush()
            record = append(
                session,
                actor,
                "exception.approved",
                f"exception {child.id}",
                {
                    "comment": child.decision_comment,
                    "role": role,
                    "closure_of": parent.id,
                    "requirement": package["requirement"],
                    "expires_at": child.expires_at.isoformat() if child.expires_at else None,
                },
                project=parent.project,
            )
            child.audit_id = record.seq


_EXAMPLES = {
    Ecosystem.PYPI: 'package "lightgbm", versions ">=4.3,<5"',
    Ecosystem.CONDA: 'package "lightgbm >=4.3"',
    Ecosystem.CONTAINERS: 'package "mar/azureml/openmpi4.1.0-ubuntu22.04", versions "2024*"',
}
_EXACT_PIN = re.compile(r"^==\s*([A-Za-z0-9.+!_-]+)$")


def _already_allowed(
    allowlist: Allowlist, ecosystem: Ecosystem, env: str, name: str, new: NewRequest
) -> Decision | None:
    """The rule that already admits the request, when the request names one version or tag."""
    try:
        if ecosystem is Ecosystem.PYPI:
            pin = _EXACT_PIN.match(new.versions or "")
            if pin:
                return allowlist.decide(ecosystem, env, name, pin.group(1))
            return None
        if ecosystem is Ecosystem.CONTAINERS and new.versions and not set(new.versions) & set("*?["):
            return allowlist.decide(ecosystem, env, name, new.versions)
    except UnknownEnvironment:
        return None
    return None
