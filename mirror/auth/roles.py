"""The role table (README "Roles"), as data. A token carries one role and its projects."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Permission(str, enum.Enum):
    REQUEST = "request exceptions"
    READ_REQUESTS = "read requests"
    DECIDE = "approve or reject requests"
    REVOKE = "revoke exceptions"
    READ_ALLOWLISTS = "read allowlists"
    READ_AUDIT = "read the audit log"
    POST_GATE = "post gate decisions"
    MANAGE_TOKENS = "manage tokens"
    METRICS = "read metrics"
    PACKAGES = "use package routes"
    IMAGES = "pull base images"


class Scope(enum.Enum):
    OWN = "own projects"
    ALL = "all projects"


P = Permission
_REQUESTER = {P.REQUEST: Scope.OWN, P.READ_REQUESTS: Scope.OWN, P.READ_ALLOWLISTS: Scope.ALL}
_LEAD = {**_REQUESTER, P.DECIDE: Scope.OWN, P.REVOKE: Scope.OWN, P.READ_AUDIT: Scope.OWN}

ROLES: dict[str, dict[Permission, Scope]] = {
    "data-scientist": _REQUESTER,
    "ml-engineer": _REQUESTER,
    "data-analyst": _REQUESTER,
    "model-tester": _REQUESTER,
    "project-lead": _LEAD,
    "product-owner": _LEAD,
    "data-governance": {
        P.READ_REQUESTS: Scope.ALL,
        P.DECIDE: Scope.ALL,
        P.REVOKE: Scope.ALL,
        P.READ_ALLOWLISTS: Scope.ALL,
        P.READ_AUDIT: Scope.ALL,
    },
    "platform-support": {
        P.READ_REQUESTS: Scope.ALL,
        P.REVOKE: Scope.ALL,
        P.READ_ALLOWLISTS: Scope.ALL,
        P.READ_AUDIT: Scope.ALL,
        P.MANAGE_TOKENS: Scope.ALL,
    },
    "business-stakeholder": {P.READ_REQUESTS: Scope.OWN, P.READ_ALLOWLISTS: Scope.ALL},
    "end-user": {P.READ_REQUESTS: Scope.OWN, P.READ_ALLOWLISTS: Scope.ALL},
    "cicd-process": {P.READ_ALLOWLISTS: Scope.ALL, P.POST_GATE: Scope.ALL},
    "monitoring-process": {P.METRICS: Scope.ALL},
    "workspace": {P.PACKAGES: Scope.ALL},
}


SERVER_MINTED_ROLES = frozenset(role for role, table in ROLES.items() if P.DECIDE in table or P.MANAGE_TOKENS in table)
"""Roles whose tokens only `airlock token create`, run by the server's operator, issues. A token
for one of them can approve a request (or mint more tokens); were the API to mint them, whoever
holds `manage tokens` could name a second "person" and approve their own request under that name,
and the requester != approver rule would compare two names one person chose."""


def may_mint(minter: Principal | None, role: str) -> bool:
    """Whether `minter` may create a token for `role`; None is the server's operator (the CLI)."""
    if minter is None:
        return True
    return minter.may(Permission.MANAGE_TOKENS) and role not in SERVER_MINTED_ROLES


@dataclass(frozen=True)
class Principal:
    """Who is calling: from a token."""

    user: str
    role: str
    projects: frozenset[str]
    token_id: str
    expires_at: datetime | None = None
    """When the token stops working (a cached principal is not used past it)."""

    def scope(self, permission: Permission) -> Scope | None:
        return ROLES.get(self.role, {}).get(permission)

    def may(self, permission: Permission, project: str | None = None) -> bool:
        scope = self.scope(permission)
        if scope is Scope.ALL:
            return True
        if scope is Scope.OWN:
            return project is None or project in self.projects
        return False


MACHINE_ROLES = frozenset({"cicd-process", "monitoring-process", "workspace"})
_OPEN_ROUTE_MACHINES = {
    Permission.PACKAGES: frozenset({"workspace"}),
    Permission.IMAGES: frozenset({"workspace", "cicd-process"}),
}
"""The machine roles that may use package routes and `/v2` (every human role may)."""


def may_use_open_route(principal: Principal, permission: Permission) -> bool:
    """Package routes and /metrics when AIRLOCK_REQUIRE_TOKEN=true: `workspace` and every human
    role may install (a data scientist's own token works for pip); `cicd-process` may also pull
    base images (`/v2`: the pipeline builds on them, and the gate reads their layers through
    Airlock with `--server`); /metrics is for `monitoring-process` and `platform-support`."""
    if permission in _OPEN_ROUTE_MACHINES:
        return principal.role in _OPEN_ROUTE_MACHINES[permission] or principal.role not in MACHINE_ROLES
    return principal.role in ("monitoring-process", "platform-support")
