"""OSV advisories (the format of the GitHub Advisory Database and osv.dev), read from a folder.

The same folder feeds the exception pre-checks here and `airlock-gate db build`, so a request is
judged with the advisory data the gate will later scan with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    package: str
    """Normalised PyPI name."""
    ranges: tuple[tuple[str | None, str | None, str | None], ...]
    """(introduced, fixed, last_affected) intervals."""
    versions: frozenset[str]

    def affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        for introduced, fixed, last_affected in self.ranges:
            low = Version(introduced) if introduced and introduced != "0" else None
            if low is not None and parsed < low:
                continue
            if fixed is not None and parsed >= Version(fixed):
                continue
            if last_affected is not None and parsed > Version(last_affected):
                continue
            return True
        return False

    @property
    def fixed_versions(self) -> list[str]:
        return [fixed for _, fixed, _ in self.ranges if fixed]


def _intervals(events: list[dict[str, str]]) -> list[tuple[str | None, str | None, str | None]]:
    intervals, start = [], None
    for event in events:
        if "introduced" in event:
            start = event["introduced"]
        elif "fixed" in event:
            intervals.append((start, event["fixed"], None))
            start = None
        elif "last_affected" in event:
            intervals.append((start, None, event["last_affected"]))
            start = None
    if start is not None:
        intervals.append((start, None, None))
    return intervals


def severity_of(document: dict) -> str:
    specific = (document.get("database_specific") or {}).get("severity")
    if isinstance(specific, str) and specific.upper() in ("LOW", "MEDIUM", "MODERATE", "HIGH", "CRITICAL"):
        return "MEDIUM" if specific.upper() == "MODERATE" else specific.upper()
    return "UNKNOWN"


def parse_osv(document: dict) -> list[Advisory]:
    """The PyPI advisories in one OSV document (one per affected package)."""
    found = []
    for affected in document.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        ranges = []
        for item in affected.get("ranges", []):
            if item.get("type") in ("ECOSYSTEM", "SEMVER"):
                ranges.extend(_intervals(item.get("events", [])))
        found.append(Advisory(
            id=document["id"], aliases=tuple(document.get("aliases", [])), summary=document.get("summary", ""),
            severity=severity_of(document), package=canonicalize_name(package["name"]),
            ranges=tuple(ranges), versions=frozenset(affected.get("versions", [])),
        ))
    return found


_loaded: dict[Path, tuple[tuple, dict[str, list[Advisory]]]] = {}


def load_advisories(folder: Path) -> dict[str, list[Advisory]]:
    """Advisories by normalised package name, re-read only when a file changed; unreadable files
    raise ValueError naming the file."""
    files = sorted(folder.rglob("*.json"))
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    cached = _loaded.get(folder)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    by_package = _read_advisories(files)
    _loaded[folder] = (stamp, by_package)
    return by_package


def _read_advisories(files: list[Path]) -> dict[str, list[Advisory]]:
    by_package: dict[str, list[Advisory]] = {}
    for path in files:
        try:
            document = json.loads(path.read_text())
            advisories = parse_osv(document)
        except (OSError, ValueError, KeyError, InvalidVersion) as exc:
            raise ValueError(f"{path}: not a readable OSV advisory ({exc})") from None
        for advisory in advisories:
            by_package.setdefault(advisory.package, []).append(advisory)
    return by_package
