"""The policy role: what an allowlist rule is, and what a decision says.

Everything here is pure data. Loading files (`loader.py`), matching versions per ecosystem
(`pypi.py`, `conda.py`, `containers.py`) and answering questions (`allowlist.py`) build on it.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from mirror.policy.conditions import Conditions


class Ecosystem(str, enum.Enum):
    """A kind of package Airlock curates; the value is the `ecosystem:` key of a file."""

    PYPI = "pypi"
    CONDA = "conda"
    CONTAINERS = "containers"


class RuleKind(str, enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Origin(NamedTuple):
    """Where a rule comes from: a line of an allowlist file, or an approved exception.

    Rules, origins and targets are NamedTuples rather than frozen dataclasses: equally immutable,
    but built several times faster, and a 100,000-rule allowlist builds 300,000 of them.
    """

    file: str | None = None
    """Path of the allowlist file as given to the loader (e.g. `allowlists/pypi.yaml`)."""
    line: int = 0
    """1-based line of the entry in `file`."""
    exception_id: str | None = None
    """Id of the approved exception request, when the rule is one."""

    def __str__(self) -> str:
        if self.exception_id is not None:
            return f"exception {self.exception_id}"
        return f"{self.file}:{self.line}"


class VersionMatcher(abc.ABC):
    """Says whether one version (and, for conda, build string) of a package is admitted."""

    @abc.abstractmethod
    def matches(self, version: str, build: str | None) -> bool:
        """True if `version` (and `build`, where the ecosystem has builds) is admitted."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """What the matcher admits, as a reviewer reads it (`>=1.26,<3`, `tags 2024*`)."""

    @property
    def unrestricted(self) -> bool:
        """True when every version is admitted (a deny entry with no version limit blocks a name)."""
        return False

    def why_not(self, version: str, build: str | None) -> str:
        """Why `version` is not admitted; implementations refine it (pre-release, digest, ...)."""
        return f"outside the allowed versions ({self.description})"


class Rule(NamedTuple):
    """One allow or deny entry, after validation and name normalisation (immutable; see Origin)."""

    ecosystem: Ecosystem
    kind: RuleKind
    name: str
    """Normalised package name (PEP 503 for PyPI; conda name; `upstream/repository` for images)."""
    matcher: VersionMatcher
    environments: frozenset[str]
    """Environments the entry names; `extends` is applied when the allowlist is built."""
    reason: str
    origin: Origin
    owner: str | None = None
    expires_at: datetime | None = None
    """First instant (UTC) at which the entry no longer allows anything."""
    channel: str | None = None
    """Conda only: the channel the entry is limited to."""
    conditions: Conditions | None = None
    """Conditions the entry sets for itself, over its environment's (`mirror.policy.conditions`)."""
    waives: frozenset[str] = frozenset()
    """An approved exception's waived conditions (`min_age`, …) for the versions it names."""

    @property
    def expiry_text(self) -> str:
        """`2026-01-31` for a file entry (valid through that day), the instant for an exception."""
        if self.expires_at is None:
            return "never"
        if self.origin.exception_id is None:
            return (self.expires_at - timedelta(days=1)).date().isoformat()
        return self.expires_at.isoformat(timespec="seconds")

    @property
    def summary(self) -> str:
        """`numpy >=1.26,<3, owner ml-platform` — the words `explain` shows after the origin."""
        text = f"{self.name} {self.matcher.description}".strip()
        if self.owner:
            text += f", owner {self.owner}"
        return text


@dataclass(frozen=True, slots=True)
class ExceptionGrant:
    """An approved exception request, as the policy sees it (the store holds the rest)."""

    id: str
    ecosystem: Ecosystem
    package: str
    """PyPI project name, conda MatchSpec, or `upstream/repository`."""
    versions: str | None
    """PEP 440 specifier (PyPI), tag glob or digest (containers); None for conda."""
    environments: frozenset[str]
    expires_at: datetime
    approved_by: str
    project: str | None = None
    waives: frozenset[str] = frozenset()
    """Conditions (`min_age`, `block_vulnerable`, …) the approval waives for the versions it names."""


class Decision(NamedTuple):
    """The answer to "may this package version enter this environment?".

    Immutable like the dataclasses here, but a NamedTuple: one is made per first-time question
    on the hot path, and a tuple is built in a fraction of a frozen dataclass's time.
    """

    allowed: bool
    reason: str
    """A sentence a user can act on: which rule allowed it, or why not and how to ask."""
    rule: str | None = None
    """`FILE:LINE` or `exception ID` of the deciding rule; None when no rule applies."""
    condition: str | None = None
    """The condition that withheld an otherwise allowed file (`min_age`, `block_vulnerable`, …)."""
    until: datetime | None = None
    """When a file withheld by `min_age` becomes available by itself."""


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem found in an allowlist file."""

    file: str
    line: int
    message: str
    severity: str = field(default="error", compare=False)
    """`error` (the file is rejected) or `warning` (reported, the file still applies)."""

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class PolicyError(Exception):
    """Base of the policy role's errors."""


class InvalidAllowlist(PolicyError):
    """One or more allowlist files are invalid; nothing of them was applied."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class InvalidGrant(PolicyError, ValueError):
    """An exception request no rule can be made of; `field` names the part (`package`, `versions`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownEnvironment(PolicyError):
    """A question named an environment that the ecosystem's file does not declare."""

    def __init__(self, ecosystem: Ecosystem, environment: str, known: list[str]) -> None:
        self.ecosystem = ecosystem
        self.environment = environment
        self.known = known
        names = ", ".join(known) or "none"
        super().__init__(f"unknown environment {environment!r} for {ecosystem.value} (known: {names})")
