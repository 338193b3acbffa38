"""Reading requests as a principal may: the API's list (rendered rows reused while unchanged) and
the web UI's pages. A mixin of `ExceptionRequests`, which holds the database and access control."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, func, select, type_coerce

from mirror.auth.roles import Permission, Principal
from mirror.exception_requests.store import request_payload
from mirror.store.models import ExceptionRequest

if TYPE_CHECKING:
    from mirror.auth.access import AccessControl
    from mirror.store.db import Database

_MUTABLE = ("status", "decided_by", "decided_at", "decision_comment", "expires_at", "revoked_by", "revoked_at")


class RequestReads:
    database: Database
    access: AccessControl
    _rendered: dict[int, tuple[tuple, str]]

    def list_json(
        self,
        principal: Principal,
        status: str | None,
        project: str | None,
        ecosystem: str | None,
        limit: int,
        offset: int,
        render: Callable[[dict[str, Any]], str],
    ) -> str:
        """The requests as a JSON array, newest first, each row as `render(payload)` makes it.

        The list is the API's hottest read and rows are mostly immutable: the query fetches only
        ids and the columns a decision changes, and each row's rendering (the API validates it
        against its answer model) is made once and reused while those columns stay the same
        (other replicas' changes included)."""
        scope = principal.scope(Permission.READ_REQUESTS)
        if scope is None:
            raise self.access.deny(
                principal, "exception.list", "exceptions", f"role {principal.role} may not read requests"
            )
        table = ExceptionRequest.__table__
        # The mutable columns are only compared, never shown: read them untyped, so SQLite's
        # DateTime parsing (most of this query's cost at 100 rows) is skipped.
        fingerprint = [type_coerce(table.c[name], String) for name in _MUTABLE]
        query = select(table.c.id, *fingerprint).order_by(table.c.id.desc()).limit(limit).offset(offset)
        if scope.name == "OWN":
            if project is not None and project not in principal.projects:
                raise self.access.deny(
                    principal,
                    "exception.list",
                    f"project {project}",
                    f"role {principal.role} may read requests of its own projects only",
                    project,
                )
            query = query.where(table.c.project.in_(sorted(principal.projects)))
        for column, value in ((table.c.status, status), (table.c.project, project), (table.c.ecosystem, ecosystem)):
            if value is not None:
                query = query.where(column == value)
        # Two statements without a snapshot: a row changed between them is cached with the older
        # fingerprint and so rendered again on the next list.
        with self.database.reading(snapshot=False) as session:
            states = session.execute(query).all()
            stale = {
                row[0]: tuple(row[1:]) for row in states if self._rendered.get(row[0], (None,))[0] != tuple(row[1:])
            }
            if stale:
                for row in session.execute(select(table).where(table.c.id.in_(stale))).mappings():
                    self._rendered[row["id"]] = (stale[row["id"]], render(request_payload(row)))
        if len(self._rendered) > 50_000:
            keep = {row[0] for row in states}
            self._rendered = {k: v for k, v in self._rendered.items() if k in keep}
        return "[" + ",".join(self._rendered[row[0]][1] for row in states) + "]"

    def rows(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        requested_by: str | None = None,
        decidable: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ExceptionRequest], int]:
        """A page of requests the principal may read (newest first) and how many there are in all;
        `decidable`: only those of projects the principal may decide for (an approver's queue)."""
        permission = Permission.DECIDE if decidable else Permission.READ_REQUESTS
        scope = principal.scope(permission)
        if scope is None:
            raise self.access.deny(
                principal, "exception.list", "exceptions", f"role {principal.role} may not {permission.value}"
            )
        conditions = []
        if scope.name == "OWN":
            conditions.append(ExceptionRequest.project.in_(sorted(principal.projects)))
        if status is not None:
            conditions.append(ExceptionRequest.status == status)
        if requested_by is not None:
            conditions.append(ExceptionRequest.requested_by == requested_by)
        with self.database.reading() as session:
            total = session.execute(select(func.count()).select_from(ExceptionRequest).where(*conditions)).scalar_one()
            found = (
                session.execute(
                    select(ExceptionRequest)
                    .where(*conditions)
                    .order_by(ExceptionRequest.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
        return list(found), total
