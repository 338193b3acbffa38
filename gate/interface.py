"""What the gate's parts exchange: the facts a scan found, the findings checks make, the verdict.

Frozen dataclasses (pip-audit's model): the scanner produces `ImageFacts`, each `Check` turns them
into `Finding`s, `decide` turns findings into a `Verdict`, and the report formatters only read.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.errors import (
    GateError as GateError,
)  # re-exported: defined apart so the scan path can raise it before loading this

if TYPE_CHECKING:
    from mirror.policy import Allowlist
    from mirror.policy.gate_rules import GateThresholds, Waiver

SEVERITY_ORDER = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"

    @property
    def exit_code(self) -> int:
        return {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.UNDECIDED: 2}[self]


class Level(str, enum.Enum):
    """How one finding weighs: a `fail` blocks the deployment, a `warn` is shown, `info` says what passed."""

    FAIL = "fail"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True)
class Package:
    kind: str
    """`python` (dist-info / egg-info) or `conda` (conda-meta)."""
    name: str
    version: str
    path: str
    layer: str | None
    """The diff ID of the layer that added it."""
    build: str | None = None
    installed_by: str | None = None
    """For Python metadata a conda package installed (its record lists the file): that package,
    which is vetted as conda, not as a PyPI project."""
    licence: str | None = None
    """As the package's metadata (Trivy) or conda record states it; None when it states none."""


@dataclass(frozen=True)
class Vulnerability:
    id: str
    vendor_ids: tuple[str, ...]
    package: str
    version: str
    fixed_version: str
    severity: str
    title: str
    path: str
    layer: str | None


@dataclass(frozen=True)
class Secret:
    rule_id: str
    category: str
    severity: str
    title: str
    path: str
    line: int
    layer: str | None


@dataclass(frozen=True)
class ImageFacts:
    """Everything the scan learned about one image."""

    reference: str
    image_id: str
    diff_ids: tuple[str, ...]
    packages: tuple[Package, ...]
    vulnerabilities: tuple[Vulnerability, ...]
    secrets: tuple[Secret, ...]
    scanner: str
    """e.g. `trivy 0.76.0`."""


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    title: str
    reason: str
    """What is wrong (or right), and for a failure what to do about it."""
    package: str | None = None
    version: str | None = None
    id: str | None = None
    severity: str | None = None
    path: str | None = None
    layer: str | None = None
    rule: str | None = None
    """The allowlist rule, waiver or base image it rests on (FILE:LINE or exception id)."""

    def as_dict(self) -> dict[str, str]:
        """The fields that are set, for JSON and the audit record (a fast `asdict`: images carry thousands)."""
        found = {"check": self.check, "level": self.level.value, "title": self.title, "reason": self.reason}
        for name in _OPTIONAL_FINDING_FIELDS:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        return found


_OPTIONAL_FINDING_FIELDS = ("package", "version", "id", "severity", "path", "layer", "rule")


@dataclass(frozen=True)
class BaseImage:
    """An allowed base image for the environment, with the layers it is made of."""

    reference: str
    digest: str
    diff_ids: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class GateContext:
    """The inputs every check may read."""

    environment: str
    facts: ImageFacts
    allowlist: Allowlist
    thresholds: GateThresholds
    waivers: tuple[Waiver, ...]
    base_images: tuple[BaseImage, ...] | None
    """None: no containers.yaml, the base-image check is not configured."""
    base: BaseImage | None = None
    """The allowed base the image's bottom layers equal (None: on no allowed base)."""


class Check(abc.ABC):
    name: str

    @abc.abstractmethod
    def run(self, context: GateContext) -> list[Finding]:
        """Findings for this image; raise GateError when the check cannot be made."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reference: str
    environment: str
    digest: str | None
    findings: tuple[Finding, ...]
    cause: str | None = None
    """For UNDECIDED: why, in one line."""
    discarded: tuple[str, ...] = ()
    """What was removed: `engine:IMAGE`, `registry:HOST/NAME@DIGEST`."""
    audit_id: int | None = None
    facts: ImageFacts | None = None

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.FAIL]


def outcome_of(findings: list[Finding]) -> Outcome:
    return Outcome.FAIL if any(f.level is Level.FAIL for f in findings) else Outcome.PASS
