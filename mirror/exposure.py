"""Which allowlisted PyPI versions a condition withholds now: for the `policy.changed` record and
webhook written when the advisories change, and for `airlock report exposure`.

The versions looked at are those Airlock knows: the upstream pages it has stored
(`DATA/pypi/upstream/`), i.e. every project a workspace has asked for. Only conditions that
facts can newly trigger count here (`block_vulnerable`, `block_malicious`): an age withholding
ends by itself, and a licence is read from metadata when a file is served.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from packaging.version import InvalidVersion, Version

from mirror.policy import Allowlist, Ecosystem
from mirror.policy.advisories import AdvisoryIndex
from mirror.policy.conditions import ReleaseFacts
from mirror.pypi.licences import licence_from_metadata
from mirror.pypi.simple import parse_filename

FACT_CONDITIONS = frozenset({"block_vulnerable", "block_malicious"})


@dataclass(frozen=True)
class Withheld:
    version: str
    condition: str
    reason: str


@dataclass(frozen=True)
class Exposure:
    """One allowlisted package in one environment with versions a condition withholds."""

    package: str
    environment: str
    entry: str
    """`FILE:LINE` (or `exception ID`) of the entry whose range holds them."""
    owner: str | None
    withheld: tuple[Withheld, ...]
    nearest_allowed: str | None
    """The newest known version the environment still serves, if any."""
    advisories: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "package": self.package,
            "environment": self.environment,
            "entry": self.entry,
            "owner": self.owner,
            "withheld": [w.__dict__ for w in self.withheld],
            "nearest_allowed": self.nearest_allowed,
            "advisories": list(self.advisories),
        }


def known_releases(data_dir: Path, project: str) -> dict[str, datetime | None]:
    """Version -> its newest file's upload time, from the upstream page Airlock stored."""
    try:
        data = json.loads((data_dir / "pypi" / "upstream" / f"{project}.json").read_bytes())
    except (OSError, ValueError):
        return {}
    releases: dict[str, datetime | None] = {}
    for entry in data.get("files", ()):
        parsed = parse_filename(str(entry.get("filename", "")))
        if parsed is None or parsed[0] != project:
            continue
        uploaded = _instant(entry.get("upload_time"))
        known = releases.get(parsed[1])
        releases[parsed[1]] = uploaded if known is None or (uploaded and uploaded > known) else known
    return releases


def stored_release_facts(data_dir: Path, project: str, version: str) -> ReleaseFacts:
    """What Airlock holds about a release: its newest file's upload time (the stored upstream page)
    and the licence of any of its files' metadata Airlock has read."""
    try:
        data = json.loads((data_dir / "pypi" / "upstream" / f"{project}.json").read_bytes())
    except (OSError, ValueError):
        return ReleaseFacts()
    uploaded: datetime | None = None
    licence: str | None = None
    for entry in data.get("files", ()):
        filename = str(entry.get("filename", ""))
        if parse_filename(filename) != (project, version):
            continue
        instant = _instant(entry.get("upload_time"))
        uploaded = instant if uploaded is None or (instant and instant > uploaded) else uploaded
        digest = entry.get("sha256")
        if licence is None and isinstance(digest, str) and len(digest) == 64:
            held = data_dir / "pypi" / "metadata" / digest[:3] / digest[3:16] / f"{filename}.metadata"
            with contextlib.suppress(OSError):  # not read by Airlock yet
                licence = licence_from_metadata(held.read_bytes())
    return ReleaseFacts(uploaded, licence)


def exposure_of(
    allowlist: Allowlist, env: str, data_dir: Path, now: datetime, packages: Iterable[str] | None = None
) -> list[Exposure]:
    """Every allowlisted package of `env` (or only `packages`) with known versions inside its
    entries' ranges that `block_vulnerable` or `block_malicious` withholds."""
    wanted = set(packages) if packages is not None else None
    found: list[Exposure] = []
    for name in allowlist.names(Ecosystem.PYPI, env):
        if wanted is not None and name not in wanted:
            continue
        releases = known_releases(data_dir, name)
        withheld: list[Withheld] = []
        allowed: list[str] = []
        entries: dict[str, str | None] = {}
        ids: set[str] = set()
        for version, uploaded in releases.items():
            decision = allowlist.decide(Ecosystem.PYPI, env, name, version)
            if not decision.allowed:
                continue  # outside every range: not the entries' concern
            rule = allowlist.rule_for(decision)
            judged = allowlist.judge(Ecosystem.PYPI, env, name, version, ReleaseFacts(uploaded), now=now)
            if judged.condition in FACT_CONDITIONS:
                withheld.append(Withheld(version, judged.condition, judged.reason))
                entries[decision.rule or "?"] = rule.owner if rule else None
                ids.update(fact.id for fact in allowlist.advisory_facts(name, version))
            elif judged.allowed:
                allowed.append(version)
        if withheld:
            entry, owner = sorted(entries.items())[0]
            found.append(
                Exposure(
                    name,
                    env,
                    entry,
                    owner,
                    tuple(sorted(withheld, key=lambda w: _order(w.version))),
                    max(allowed, key=_order) if allowed else None,
                    tuple(sorted(ids)),
                )
            )
    return found


def changed_packages(before: AdvisoryIndex | None, after: AdvisoryIndex | None) -> set[str]:
    """PyPI packages whose advisories differ between two feeds."""

    def summary(index: AdvisoryIndex | None) -> dict[str, set]:
        table: dict[str, set] = {}
        for vulnerability in index.vulnerabilities if index else ():
            for package, affected in vulnerability.affected.items():
                table.setdefault(package, set()).add(
                    (vulnerability.id, vulnerability.severity, vulnerability.ids, affected)
                )
        return table

    old, new = summary(before), summary(after)
    return {package for package in old.keys() | new.keys() if old.get(package) != new.get(package)}


def newly_withheld(before: Allowlist, after: Allowlist, data_dir: Path, now: datetime) -> list[dict]:
    """What the new advisories withhold that the old ones did not: per package and environment,
    the versions, the advisories and the entry's owner (the body of `policy.changed`)."""
    packages = changed_packages(before.advisories, after.advisories)
    changes: list[dict] = []
    for env in after.environments(Ecosystem.PYPI):
        was = {e.package: e for e in exposure_of(before, env, data_dir, now, packages)} if packages else {}
        for exposure in exposure_of(after, env, data_dir, now, packages) if packages else ():
            earlier = {w.version for w in was[exposure.package].withheld} if exposure.package in was else set()
            new = [w for w in exposure.withheld if w.version not in earlier]
            if new:
                changes.append(
                    {
                        "package": exposure.package,
                        "environment": env,
                        "versions": [w.version for w in new],
                        "conditions": sorted({w.condition for w in new}),
                        "advisories": list(exposure.advisories),
                        "entry": exposure.entry,
                        "owner": exposure.owner,
                        "nearest_allowed": exposure.nearest_allowed,
                    }
                )
    return changes


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _order(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
