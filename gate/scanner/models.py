"""The parts of Trivy's JSON report (SchemaVersion 2) the gate reads, as pydantic models.

Unknown fields are ignored so a patch release that adds fields still parses; a report missing what
the gate needs fails validation, and the gate then cannot decide (fail closed).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class LayerRef(_Model):
    DiffID: str | None = None
    CreatedBy: str | None = None


class TrivyPackage(_Model):
    Name: str
    Version: str = ""
    FilePath: str | None = None
    Layer: LayerRef | None = None
    AnalyzedBy: str | None = None
    Licenses: list[str] = Field(default_factory=list)


class TrivyVulnerability(_Model):
    VulnerabilityID: str
    VendorIDs: list[str] = Field(default_factory=list)
    PkgName: str
    PkgPath: str | None = None
    InstalledVersion: str = ""
    FixedVersion: str = ""
    Severity: str = "UNKNOWN"
    Title: str = ""
    Layer: LayerRef | None = None


class TrivySecret(_Model):
    RuleID: str
    Category: str = ""
    Severity: str = "UNKNOWN"
    Title: str = ""
    StartLine: int = 0
    Layer: LayerRef | None = None


class TrivyResult(_Model):
    Target: str
    Class: str
    Type: str | None = None
    Packages: list[TrivyPackage] = Field(default_factory=list)
    Vulnerabilities: list[TrivyVulnerability] = Field(default_factory=list)
    Secrets: list[TrivySecret] = Field(default_factory=list)


class TrivyMetadata(_Model):
    ImageID: str | None = None
    DiffIDs: list[str] = Field(default_factory=list)
    RepoTags: list[str] = Field(default_factory=list)


class TrivyVersion(_Model):
    Version: str


class TrivyReport(_Model):
    SchemaVersion: int
    ArtifactName: str
    ArtifactType: str
    Metadata: TrivyMetadata
    Results: list[TrivyResult] = Field(default_factory=list)
    Trivy: TrivyVersion | None = None
