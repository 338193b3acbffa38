"""OSV advisories (the format of the GitHub Advisory Database and osv.dev), read from a folder.

The same folder feeds the exception pre-checks and `airlock-gate db build`, so a request is judged
with the advisory data the gate will later scan with. Pure reading: callers cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cvss import CVSS3, CVSSError
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
    details: str = ""
    references: tuple[str, ...] = ()

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
    # PYSEC and other OSV sources carry only a CVSS vector: rate it as NVD would.
    for item in document.get("severity") or []:
        vector = item.get("score", "") if isinstance(item, dict) else ""
        if item.get("type") in ("CVSS_V3", "CVSS_V4") and vector.startswith("CVSS:3"):
            try:
                rating = CVSS3(vector).severities()[0].upper()
            except CVSSError:
                continue
            return "UNKNOWN" if rating == "NONE" else rating
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
            details=document.get("details", ""), references=tuple(r["url"] for r in document.get("references", []) if r.get("url")),
        ))
    return found


def read_advisory_folder(folder: Path) -> dict[str, list[Advisory]]:
    """Advisories by normalised package name from every `*.json` below `folder`; an unreadable
    file raises ValueError naming it."""
    by_package: dict[str, list[Advisory]] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            document = json.loads(path.read_text())
            advisories = parse_osv(document)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidVersion) as exc:
            raise ValueError(f"{path}: not a readable OSV advisory ({exc})") from None
        for advisory in advisories:
            by_package.setdefault(advisory.package, []).append(advisory)
    return by_package
