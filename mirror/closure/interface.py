"""The closure role: does every allowed entry install from its environment's curated index?

A resolver (uv's, for PyPI; rattler's repodata, for conda) answers for each target; what it needed
that the environment does not allow is `Missing`, with the chain that needed it and the entry that
would fix it. "Could not decide" (upstream unreachable, resolver failure) is `ClosureError`, never a
verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Missing:
    """A package the environment's entries need and the environment does not allow."""

    package: str
    """Normalised name."""
    requirement: str
    """What needs it asks for (`python-dateutil>=2.8.2`)."""
    required_by: tuple[str, ...]
    """The chain from an allowed entry to what needs it directly (`pandas 2.3.3`, ...)."""
    targets: tuple[str, ...]
    """The targets it is needed on (`cp311-manylinux_2_28_x86_64`)."""
    version: str = ""
    """The version the resolver chose (the newest that fits)."""
    owner: str | None = None
    """The owner of the entry that needs it: who should own the fix."""
    denied: str | None = None
    """Set when the package is denied (the rule and its reason): no entry can fix that."""
    ecosystem: str = "pypi"

    @property
    def prerelease(self) -> bool:
        from packaging.version import InvalidVersion, Version

        try:
            return Version(self.version).is_prerelease
        except InvalidVersion:
            return False

    @property
    def fix(self) -> str:
        """The entry that would fix it, as `--write` adds it."""
        if self.denied:
            return f"none: {self.package} is denied ({self.denied}); drop or change what needs it"
        root = self.required_by[0].split()[0] if self.required_by else "?"
        if self.ecosystem == "conda":
            return f'{{spec: "{self.requirement}", reason: dependency of {root}, owner: {self.owner or "?"}}}'
        versions = requirement_specifier(self.requirement)
        versions_part = f', versions: "{versions}"' if versions else ""
        return f"{{name: {self.package}{versions_part}, reason: dependency of {root}, owner: {self.owner or '?'}}}"


def requirement_specifier(requirement: str) -> str:
    """`python-dateutil>=2.8.2; python_version < "4"` -> `>=2.8.2` (empty when there is none)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return str(Requirement(requirement).specifier)
    except InvalidRequirement:
        return ""


@dataclass(frozen=True)
class Unsatisfiable:
    """An entry whose allowed versions cannot be installed together with what they need."""

    entry: str
    targets: tuple[str, ...]
    explanation: str
    """The resolver's own words."""


@dataclass(frozen=True)
class ClosureReport:
    environment: str
    ecosystem: str
    missing: tuple[Missing, ...] = ()
    unsatisfiable: tuple[Unsatisfiable, ...] = ()
    targets: tuple[str, ...] = ()
    entries: int = 0
    """Allowed entries checked."""
    seconds: float = 0.0

    @property
    def closed(self) -> bool:
        return not self.missing and not self.unsatisfiable

    def as_dict(self) -> dict:
        return {
            "environment": self.environment,
            "ecosystem": self.ecosystem,
            "closed": self.closed,
            "targets": list(self.targets),
            "entries": self.entries,
            "missing": [
                {
                    "package": m.package,
                    "requirement": m.requirement,
                    "required_by": list(m.required_by),
                    "targets": list(m.targets),
                    "version": m.version,
                    "fix": m.fix,
                    **({"denied": m.denied} if m.denied else {}),
                }
                for m in self.missing
            ],
            "unsatisfiable": [
                {"entry": u.entry, "targets": list(u.targets), "explanation": u.explanation} for u in self.unsatisfiable
            ],
        }


@dataclass
class ClosureError(Exception):
    """The closure could not be decided; `cause` is one line a user can act on."""

    cause: str
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.cause
