"""Request and response bodies of `/api/v1` (they are its OpenAPI documentation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

Status = Literal["pending", "approved", "rejected", "revoked", "expired"]


class ExceptionCreate(BaseModel):
    """Ask for a package that the allowlist does not admit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "ecosystem": "pypi",
                "package": "lightgbm",
                "versions": ">=4.3,<5",
                "environments": ["prod"],
                "project": "churn-model",
                "justification": "gradient boosting baseline for churn",
                "duration_days": 30,
            }
        },
    )

    ecosystem: Literal["pypi", "conda", "containers"]
    package: str = Field(
        min_length=1, max_length=300, description="PyPI project, conda MatchSpec, or upstream/repository"
    )
    versions: str | None = Field(
        None,
        max_length=300,
        description="PEP 440 specifier (pypi); tag glob or sha256 digest (containers); omit for conda",
    )
    environments: list[str] = Field(min_length=1, max_length=10)
    project: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", description="the project the package is for")
    justification: str = Field(
        min_length=20, max_length=5000, description="why the package is needed (at least 20 characters)"
    )
    duration_days: int = Field(90, ge=1, description="how long the exception lasts once approved")
    waive: list[Literal["min_age", "block_vulnerable", "block_malicious", "licenses"]] = Field(
        default_factory=list,
        max_length=4,
        description="conditions the approval waives for the named versions (pypi/conda; versions must be pinned ==X)",
    )

    @field_validator("justification")
    @classmethod
    def _meaningful(cls, value: str) -> str:
        if len(set(value.lower().split())) < 4:
            raise ValueError("say why the package is needed in a sentence (at least 4 different words)")
        return value.strip()

    @field_validator("environments")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class Decision(BaseModel):
    """An approver's word on a request.

    The class name is the OpenAPI schema name generated clients use: keep it.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"comment": "reviewed", "with_closure": True}}
    )
    comment: str = Field(
        min_length=1, max_length=5000, description="why; shown to the requester and kept in the audit log"
    )
    with_closure: bool = Field(
        False,
        description=(
            "approve: also grant every dependency the `closure` pre-check lists (one grant per package, each audited, "
            "all ending and revoked together with this request)"
        ),
    )


class ClosurePackage(BaseModel):
    package: str
    requirement: str = Field(description="what needs it asks for, e.g. python-dateutil>=2.8.2 (a MatchSpec for conda)")
    required_by: list[str] = Field(description="the chain from the requested package, e.g. ['pandas 2.3.3']")


class Precheck(BaseModel):
    name: str
    status: Literal["pass", "warn", "fail", "skipped"]
    detail: str
    packages: list[ClosurePackage] | None = Field(None, description="closure pre-check: what an approval also needs")

    @model_serializer(mode="wrap")
    def _without_empty_packages(self, handler):
        data = handler(self)
        if data.get("packages") is None:
            data.pop("packages", None)  # only the closure pre-check lists packages
        return data


class ExceptionOut(BaseModel):
    id: int
    ecosystem: str
    package: str
    versions: str | None
    environments: list[str]
    project: str
    justification: str
    duration_days: int
    status: Status
    requested_by: str
    requested_at: datetime
    prechecks: list[Precheck]
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_comment: str | None = None
    expires_at: datetime | None = None
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    audit_id: int | None = Field(None, description="sequence number of the audit record of the request")
    parent_id: int | None = Field(None, description="for a dependency granted with a request's closure: that request")
    waives: list[str] | None = Field(None, description="conditions the exception waives for its versions")


class ErrorOut(BaseModel):
    detail: Any


class RuleOut(BaseModel):
    name: str
    allows: str
    state: Literal["allow", "deny", "expired"]
    rule: str
    reason: str
    owner: str | None
    expires: str | None
    channel: str | None = None


class GrantOut(BaseModel):
    """An approved exception in force, in the form the policy builds rules from (the gate rebuilds
    the effective allowlist from its own files plus these)."""

    id: str
    package: str
    versions: str | None
    environments: list[str]
    expires_at: datetime
    approved_by: str
    project: str | None


class AllowlistOut(BaseModel):
    ecosystem: str
    environment: str
    generation: int
    rules: list[RuleOut]
    exceptions: list[GrantOut] = Field(default_factory=list)


class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    project: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class GateDecisionIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    image: str = Field(min_length=1, max_length=500)
    digest: str | None = Field(None, max_length=100)
    environment: str = Field(min_length=1, max_length=64)
    decision: Literal["pass", "fail", "undecided"]
    findings: list[dict[str, Any]] = Field(
        default_factory=list, max_length=100_000
    )  # a large image: thousands of vulnerabilities
    ci: dict[str, Any] = Field(default_factory=dict)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=200)
    role: str
    projects: list[str] = Field(default_factory=list, max_length=100)
    expires_in: str = Field("90d", pattern=r"^\d+[dh]$")


class TokenOut(BaseModel):
    id: str
    user: str
    role: str
    projects: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    token: str | None = Field(None, description="the token itself: returned once, at creation")
