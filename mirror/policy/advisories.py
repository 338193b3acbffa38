"""OSV advisories (the GitHub Advisory Database, PyPA's, an osv.dev export), merged per vulnerability.

One vulnerability is often published several times: GitHub's GHSA record, PyPA's PYSEC record and
the CVE they both alias. Read one by one they overwrite or contradict each other; merged, they say
what each says: every id, every affected range of every record (the union: the records disagree at
the edges, and a version any of them calls affected is affected), the strongest severity any of
them gives, the first title. Records that share an id or an alias are one vulnerability.

The same merge serves `airlock-gate db build`, the exception pre-checks and `allowlist explain`, so
every part judges a package with the same data. Pure reading: callers cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cvss import CVSS2, CVSS3, CVSS4, CVSSError
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
"""Weakest first; UNKNOWN means no source rated the vulnerability."""
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_GITHUB_WORDS = {"LOW": "LOW", "MODERATE": "MEDIUM", "MEDIUM": "MEDIUM", "HIGH": "HIGH", "CRITICAL": "CRITICAL"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def severity_rank(severity: str) -> int:
    """0 for UNKNOWN up to 4 for CRITICAL; a word Airlock does not know ranks as UNKNOWN."""
    return _RANK.get(severity.upper(), 0)


@dataclass(frozen=True, slots=True)
class Interval:
    """Versions from `introduced` (None: from the first) up to `fixed` (excluded) or
    `last_affected` (included); neither: every later version."""

    introduced: str | None
    fixed: str | None = None
    last_affected: str | None = None

    def contains(self, version: Version) -> bool:
        if self.introduced is not None and version < Version(self.introduced):
            return False
        if self.fixed is not None and version >= Version(self.fixed):
            return False
        return self.last_affected is None or version <= Version(self.last_affected)

    @property
    def constraint(self) -> str:
        """As a PEP 440 constraint Trivy reads (`, ` means "and")."""
        parts = [f">={self.introduced}"] if self.introduced is not None else []
        if self.fixed is not None:
            parts.append(f"<{self.fixed}")
        if self.last_affected is not None:
            parts.append(f"<={self.last_affected}")
        return ", ".join(parts) or ">=0"


@dataclass(frozen=True)
class Affected:
    """The versions of one package a vulnerability affects: inside any interval, or listed."""

    package: str
    """Normalised PyPI name."""
    intervals: tuple[Interval, ...] = ()
    versions: frozenset[str] = frozenset()
    """Listed versions as the records spell them (compared as PEP 440 versions where they parse)."""
    listed: frozenset[Version] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "listed", frozenset(v for v in map(_version_or_none, self.versions) if v is not None))

    def affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        return parsed in self.listed or any(interval.contains(parsed) for interval in self.intervals)

    @property
    def fixed_versions(self) -> list[str]:
        """Fix versions that no record calls affected (one record's fix may be inside another's range)."""
        fixes = sorted({i.fixed for i in self.intervals if i.fixed is not None}, key=_sort_key)
        return [fix for fix in fixes if not self.affects(fix)]

    def merged(self, other: Affected) -> Affected:
        intervals = self.intervals + tuple(i for i in other.intervals if i not in self.intervals)
        return Affected(self.package, intervals, self.versions | other.versions)


@dataclass(frozen=True)
class Vulnerability:
    """One vulnerability, from every record that names it."""

    id: str
    """The id Trivy reports it under: its CVE when it has one, else the first record's id."""
    ids: tuple[str, ...]
    """Every id and alias of every merged record, `id` first."""
    title: str
    details: str
    severity: str
    """The strongest of the sources' ratings (GitHub's word, CVSS v2/v3/v4 vectors); UNKNOWN if none."""
    affected: Mapping[str, Affected]
    """By normalised package name."""
    references: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    """The ids of the records merged into it (the files read)."""

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(i for i in self.ids if i != self.id)

    def affects(self, package: str, version: str) -> bool:
        found = self.affected.get(package)
        return found is not None and found.affects(version)


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    source: str
    """The file (and record id, where it has one)."""
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class AdvisoryIndex:
    """Every vulnerability of a folder of records, and what reading it did."""

    vulnerabilities: tuple[Vulnerability, ...]
    records: int = 0
    """Records read (files, or entries of files holding a list)."""
    merged: int = 0
    """Records that joined a vulnerability another record had already started."""
    skipped: tuple[SkippedRecord, ...] = ()
    _by_package: dict[str, list[Vulnerability]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for vulnerability in self.vulnerabilities:
            for package in vulnerability.affected:
                self._by_package.setdefault(package, []).append(vulnerability)

    def for_package(self, package: str) -> list[Vulnerability]:
        return self._by_package.get(canonicalize_name(package), [])

    def affecting(self, package: str, version: str) -> list[Vulnerability]:
        """The vulnerabilities of `package` that affect `version`, most severe first."""
        name = canonicalize_name(package)
        found = [v for v in self.for_package(name) if v.affects(name, version)]
        return sorted(found, key=lambda v: (-severity_rank(v.severity), v.id))

    @property
    def packages(self) -> list[str]:
        return sorted(self._by_package)


class UnreadableRecord(ValueError):
    """A record that cannot be used at all; `read_record` callers turn it into a skip."""


@dataclass(frozen=True)
class _Record:
    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    severity: str
    affected: tuple[Affected, ...]
    references: tuple[str, ...]


def severity_of(document: Mapping) -> str:
    """The strongest rating a record gives: GitHub's `database_specific.severity` and every CVSS
    vector (v2, v3, v4), scored with the `cvss` library as NVD rates them."""
    ratings = []
    specific = (document.get("database_specific") or {}).get("severity")
    if isinstance(specific, str) and specific.upper() in _GITHUB_WORDS:
        ratings.append(_GITHUB_WORDS[specific.upper()])
    for item in document.get("severity") or ():
        if isinstance(item, Mapping):
            ratings.append(_score(str(item.get("type", "")), str(item.get("score", ""))))
    return max(ratings, key=severity_rank, default="UNKNOWN")


def _score(kind: str, vector: str) -> str:
    try:
        if kind == "CVSS_V4" or vector.startswith("CVSS:4"):
            word = CVSS4(vector).severity
        elif kind == "CVSS_V3" or vector.startswith("CVSS:3"):
            word = CVSS3(vector).severities()[0]
        elif kind == "CVSS_V2":
            word = CVSS2(vector).severities()[0]
        else:
            return "UNKNOWN"
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return "UNKNOWN"
    word = str(word).upper()
    return word if word in _RANK else "UNKNOWN"


def _version_or_none(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _sort_key(text: str) -> tuple[int, Version | str]:
    parsed = _version_or_none(text)
    return (0, parsed) if parsed is not None else (1, text)  # type: ignore[return-value]


def intervals_of(events: Iterable[Mapping[str, str]]) -> tuple[Interval, ...]:
    """OSV range events (in any order) as intervals, evaluated as the OSV schema says: sorted by
    version, `introduced` opens, `fixed` (excluded) or `last_affected` (included) closes.
    Raises UnreadableRecord for a version that is not PEP 440."""
    keyed = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            if kind in event:
                text = str(event[kind])
                if kind == "introduced" and text == "0":
                    keyed.append((0, Version("0"), 0, kind, None))
                    continue
                parsed = _version_or_none(text)
                if parsed is None:
                    raise UnreadableRecord(f"{kind} version {text!r} is not a PEP 440 version")
                # at one version, a closing event ends the interval before an opening one starts the next
                keyed.append((1, parsed, 0 if kind != "introduced" else 1, kind, text))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    intervals: list[Interval] = []
    opened: tuple[str | None] | None = None
    for _, _, _, kind, text in keyed:
        if kind == "introduced":
            if opened is None:
                opened = (text,)
        elif opened is not None:
            intervals.append(
                Interval(opened[0], fixed=text) if kind == "fixed" else Interval(opened[0], last_affected=text)
            )
            opened = None
    if opened is not None:
        intervals.append(Interval(opened[0]))
    return tuple(intervals)


def read_record(document: Mapping) -> _Record | None:
    """One OSV record's PyPI content; None when it affects no PyPI package. Raises
    UnreadableRecord when the record is withdrawn or cannot be used."""
    if not isinstance(document, Mapping) or not isinstance(document.get("id"), str) or not document["id"]:
        raise UnreadableRecord("no 'id': not an OSV record")
    if document.get("withdrawn"):
        raise UnreadableRecord(f"withdrawn on {document['withdrawn']}")
    affected: dict[str, Affected] = {}
    for entry in document.get("affected") or ():
        package = entry.get("package") or {} if isinstance(entry, Mapping) else {}
        if package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        intervals: tuple[Interval, ...] = ()
        for item in entry.get("ranges") or ():
            if item.get("type") in ("ECOSYSTEM", "SEMVER"):
                intervals += intervals_of(item.get("events") or ())
        listed = frozenset(str(v) for v in entry.get("versions") or ())
        if not intervals and not listed:
            continue
        name = canonicalize_name(str(package["name"]))
        found = Affected(name, intervals, listed)
        affected[name] = affected[name].merged(found) if name in affected else found
    if not affected:
        return None
    references = tuple(r["url"] for r in document.get("references") or () if isinstance(r, Mapping) and r.get("url"))
    return _Record(
        id=document["id"],
        aliases=tuple(str(a) for a in document.get("aliases") or ()),
        summary=str(document.get("summary") or "").strip(),
        details=str(document.get("details") or "").strip(),
        severity=severity_of(document),
        affected=tuple(affected.values()),
        references=references,
    )


def first_sentence(text: str, limit: int = 300) -> str:
    sentence = _SENTENCE_END.split(" ".join(text.split()), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def merge_records(records: Iterable[_Record]) -> tuple[list[Vulnerability], int]:
    """Group records that share an id or alias (transitively) into vulnerabilities; returns them
    and how many records joined a group another record had started."""
    records = list(records)
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for record in records:
        for alias in record.aliases:
            parent[root(alias)] = root(record.id)
    groups: dict[str, list[_Record]] = {}
    for record in records:
        groups.setdefault(root(record.id), []).append(record)
    vulnerabilities = [_merge_group(group) for group in groups.values()]
    return vulnerabilities, len(records) - len(groups)


def _merge_group(group: list[_Record]) -> Vulnerability:
    ids: list[str] = []
    for record in group:
        for name in (record.id, *record.aliases):
            if name not in ids:
                ids.append(name)
    cves = sorted(i for i in ids if i.startswith("CVE-"))
    # Trivy reports a vulnerability under its CVE when it has one; do the same, so a waiver by CVE works
    primary = cves[0] if cves else group[0].id
    affected: dict[str, Affected] = {}
    for record in group:
        for entry in record.affected:
            affected[entry.package] = affected[entry.package].merged(entry) if entry.package in affected else entry
    title = next((r.summary for r in group if r.summary), "") or next(
        (first_sentence(r.details) for r in group if r.details), ""
    )
    details = max((r.details for r in group), key=len, default="")
    references: list[str] = []
    for record in group:
        references += [url for url in record.references if url not in references]
    return Vulnerability(
        id=primary,
        ids=(primary, *[i for i in ids if i != primary]),
        title=title,
        details=details,
        severity=max((r.severity for r in group), key=severity_rank),
        affected=affected,
        references=tuple(references),
        records=tuple(r.id for r in group),
    )


def index_documents(documents: Iterable[tuple[str, object]]) -> AdvisoryIndex:
    """Merge `(source name, parsed JSON)` pairs; a file may hold one record or a list of them."""
    records: list[_Record] = []
    skipped: list[SkippedRecord] = []
    count = 0
    for source, document in documents:
        for item in document if isinstance(document, list) else [document]:
            count += 1
            label = (
                f"{source} ({item['id']})" if isinstance(item, Mapping) and isinstance(item.get("id"), str) else source
            )
            try:
                record = read_record(item)
            except UnreadableRecord as exc:
                skipped.append(SkippedRecord(label, str(exc)))
                continue
            except (TypeError, AttributeError, KeyError) as exc:
                skipped.append(SkippedRecord(label, f"not a readable OSV record ({exc.__class__.__name__}: {exc})"))
                continue
            if record is None:
                skipped.append(SkippedRecord(label, "affects no PyPI package"))
                continue
            records.append(record)
    vulnerabilities, merged = merge_records(records)
    return AdvisoryIndex(tuple(vulnerabilities), count, merged, tuple(skipped))


def read_advisory_folder(folder: Path) -> AdvisoryIndex:
    """Every `*.json` below `folder`, merged. A file that is not JSON raises ValueError naming it:
    a truncated download must not pass for a feed without that advisory (fail closed)."""
    documents: list[tuple[str, object]] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            documents.append((str(path), json.loads(path.read_bytes())))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable OSV advisory ({exc})") from None
    return index_documents(documents)
