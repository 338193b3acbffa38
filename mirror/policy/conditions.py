"""Conditions: what an allowlist entry admits by name and range, further limited by facts about each
release — its age, its known advisories, whether it is reported malicious, its licence.

Declared per environment (inherited through `extends`, key by key) and overridable per entry:

    environments:
      prod:
        min_age: 7d                   # a file younger than this, or without an upload time, is withheld
        block_vulnerable: high        # advisories at or above this severity withhold the version
        block_malicious: true         # a MAL- advisory withholds the versions it names
        licenses: {deny: [AGPL-3.0-only], unknown: allow}
      preprod: {extends: prod, min_age: 2d}

Pure: the facts (upload time, licence, advisories) are given; `evaluate` says which condition,
if any, withholds a file, in a sentence a data scientist can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

CONDITION_KEYS = frozenset({"min_age", "block_vulnerable", "block_malicious", "licenses"})
SEVERITY_WORDS = ("low", "medium", "high", "critical")
_SEVERITY_RANK = {"unknown": 0, "low": 1, "medium": 2, "moderate": 2, "high": 3, "critical": 4}
_AGE = re.compile(r"^(\d{1,4})([dh])$")
_LICENCE_KEYS = frozenset({"deny", "unknown"})
IMAGE_SKIPPED_CONDITIONS = frozenset({"min_age", "block_vulnerable", "block_malicious"})
"""What the gate's provenance check leaves to others: images hold no upload times, and its
vulnerability check judges advisories with Trivy's DB."""


class AdvisoryFact(NamedTuple):
    """An advisory that affects one release, as a condition reads it."""

    id: str
    severity: str
    """`UNKNOWN`, `LOW`, … `CRITICAL` (the strongest any merged record gives)."""
    malicious: bool
    fixed: tuple[str, ...] = ()


class ReleaseFacts(NamedTuple):
    """What is known of one file of one release when a decision is made."""

    upload_time: datetime | None = None
    licence: str | None = None
    """SPDX expression or licence text; None when unknown."""
    advisories: tuple[AdvisoryFact, ...] = ()


@dataclass(frozen=True)
class Conditions:
    """The conditions in force for an entry in an environment. A field left None is not set."""

    min_age: timedelta | None = None
    block_vulnerable: str | None = None
    """Lowest severity that withholds (`low` … `critical`), or None."""
    block_malicious: bool | None = None
    licenses_deny: frozenset[str] | None = None
    licenses_unknown: str | None = None
    """`allow` or `deny`: what a release whose licence is not known gets."""
    where: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Condition -> `FILE:LINE` that set it (cited in every reason)."""

    @property
    def active(self) -> bool:
        return bool(self.min_age or self.block_vulnerable or self.block_malicious or self.licenses_deny) or (
            self.licenses_unknown == "deny"
        )

    def over(self, base: Conditions) -> Conditions:
        """These settings where set, `base`'s elsewhere (a child environment, or an entry, over its parent)."""
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
            for name in ("min_age", "block_vulnerable", "block_malicious", "licenses_deny", "licenses_unknown")
        }
        return replace(base, **values, where={**base.where, **self.where})


NO_CONDITIONS = Conditions()


class Withholding(NamedTuple):
    condition: str
    reason: str
    until: datetime | None = None
    """When the file becomes available by itself (min_age), else None."""


def read_conditions(
    body: Mapping[str, Any], cite: Callable[[str], str], report: Callable[[str, str], None]
) -> Conditions:
    """The condition keys of an environment or an entry; `cite(key)` is where a key is written
    (`FILE:LINE`), `report(key, message)` is called for each problem."""
    values: dict[str, Any] = {}
    cited: dict[str, str] = {}
    if "min_age" in body:
        text = body["min_age"]
        match = _AGE.match(str(text)) if isinstance(text, str | int) and not isinstance(text, bool) else None
        if match is None:
            report("min_age", f"min_age must be a duration like 7d or 12h, got {text!r}")
        else:
            amount = int(match.group(1))
            values["min_age"] = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
            cited["min_age"] = cite("min_age")
    if "block_vulnerable" in body:
        level = body["block_vulnerable"]
        if level is False or level == "none":
            values["block_vulnerable"] = ""  # explicitly off (overrides a parent)
            cited["block_vulnerable"] = cite("block_vulnerable")
        elif not isinstance(level, str) or level.lower() not in SEVERITY_WORDS:
            report(
                "block_vulnerable",
                f"block_vulnerable must be one of {', '.join(SEVERITY_WORDS)} or none, got {level!r}",
            )
        else:
            values["block_vulnerable"] = level.lower()
            cited["block_vulnerable"] = cite("block_vulnerable")
    if "block_malicious" in body:
        flag = body["block_malicious"]
        if not isinstance(flag, bool):
            report("block_malicious", f"block_malicious must be true or false, got {flag!r}")
        else:
            values["block_malicious"] = flag
            cited["block_malicious"] = cite("block_malicious")
    if "licenses" in body:
        licences = body["licenses"]
        if not isinstance(licences, Mapping):
            report("licenses", "licenses must be a mapping like {deny: [AGPL-3.0-only], unknown: allow}")
        else:
            for extra in licences.keys() - _LICENCE_KEYS:
                report("licenses", f"unknown key {extra!r} in licenses (keys: deny, unknown)")
            deny = licences.get("deny", [])
            if not isinstance(deny, list) or not all(isinstance(item, str) and item.strip() for item in deny):
                report("licenses", "licenses.deny must be a list of SPDX identifiers, e.g. [AGPL-3.0-only, SSPL-1.0]")
            else:
                values["licenses_deny"] = frozenset(item.strip().lower() for item in deny)
            unknown = licences.get("unknown", "allow")
            if unknown not in ("allow", "deny"):
                report("licenses", f"licenses.unknown must be allow or deny, got {unknown!r}")
            else:
                values["licenses_unknown"] = unknown
            cited["licenses"] = cite("licenses")
    return Conditions(**values, where=cited)


def severity_at_least(severity: str, threshold: str) -> bool:
    return _SEVERITY_RANK.get(severity.lower(), 0) >= _SEVERITY_RANK[threshold]


def licence_terms(licence: str) -> set[str]:
    """The identifiers of an SPDX expression (`MIT OR Apache-2.0` -> {mit, apache-2.0}), lowercased."""
    words = re.split(r"\s+(?:OR|AND|WITH)\s+|[()]", licence, flags=re.IGNORECASE)
    return {word.strip().lower() for word in words if word and word.strip()}


def evaluate(
    conditions: Conditions,
    shown: str,
    env: str,
    facts: ReleaseFacts,
    now: datetime,
    waived: frozenset[str] = frozenset(),
) -> Withholding | None:
    """The first condition that withholds the file (`shown`: `numpy 2.3.5`), or None."""
    if conditions.block_malicious and "block_malicious" not in waived:
        found = [a for a in facts.advisories if a.malicious]
        if found:
            return Withholding(
                "block_malicious",
                f"{shown} is reported malicious ({found[0].id}); {env} blocks malicious releases "
                f"(block_malicious, {conditions.where.get('block_malicious', '?')}): do not install it",
            )
    if conditions.block_vulnerable and "block_vulnerable" not in waived:
        found = [
            a
            for a in facts.advisories
            if not a.malicious and severity_at_least(a.severity, conditions.block_vulnerable)
        ]
        if found:
            worst = max(found, key=lambda a: _SEVERITY_RANK.get(a.severity.lower(), 0))
            fixed = f", fixed in {', '.join(worst.fixed)}" if worst.fixed else ", no fixed release yet"
            more = f" and {len(found) - 1} more" if len(found) > 1 else ""
            return Withholding(
                "block_vulnerable",
                f"{shown} has known vulnerability {worst.id} ({worst.severity}{fixed}){more}; {env} withholds "
                f"{conditions.block_vulnerable} and above (block_vulnerable, {conditions.where.get('block_vulnerable', '?')})",
            )
    if conditions.min_age and "min_age" not in waived:
        age = conditions.min_age
        cited = f"min_age, {conditions.where.get('min_age', '?')}"
        if facts.upload_time is None:
            return Withholding(
                "min_age",
                f"{shown} has no upload time, so its age is unknown; {env} requires {_duration(age)} ({cited})",
            )
        ready = facts.upload_time + age
        if ready > now:
            return Withholding(
                "min_age",
                f"{shown} was published {_duration(now - facts.upload_time)} ago; {env} requires "
                f"{_duration(age)} ({cited}); it becomes available on {ready.strftime('%Y-%m-%d %H:%M')} UTC",
                ready,
            )
    if (conditions.licenses_deny or conditions.licenses_unknown == "deny") and "licenses" not in waived:
        cited = f"licenses, {conditions.where.get('licenses', '?')}"
        if facts.licence is None:
            if conditions.licenses_unknown == "deny":
                return Withholding(
                    "licenses", f"{shown} declares no licence Airlock can read; {env} denies unknown licences ({cited})"
                )
        else:
            denied = sorted(licence_terms(facts.licence) & (conditions.licenses_deny or frozenset()))
            if denied:
                return Withholding(
                    "licenses", f"{shown} is licensed {facts.licence}, and {env} denies {', '.join(denied)} ({cited})"
                )
    return None


def _duration(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        days = delta.days
        return f"{days} day{'s' if days != 1 else ''}"
    hours = max(int(delta.total_seconds() // 3600), 0)
    return f"{hours} hour{'s' if hours != 1 else ''}"
