"""`airlock-gate db build`: OSV advisories (PyPI ecosystem) → a Trivy DB v2 folder.

Layout (Trivy's integration/testdata/fixtures/db/*.yaml): bucket `data-source` maps each source
bucket to its description; the source bucket `pip::…` holds one nested bucket per normalised package
name mapping a vulnerability id to `{PatchedVersions, VulnerableVersions}`; bucket `vulnerability`
maps the id to `{Title, Description, Severity, References, ...}`. `db/metadata.json` says when the
data was made, which is what the gate's `max_db_age` checks.

Records are merged first (`mirror.policy.advisories`): one entry per vulnerability and package,
holding every range of every record that names it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from packaging.version import InvalidVersion, Version

from gate.vulndb.bolt import write_bolt
from mirror.policy.advisories import Affected, SkippedRecord, read_advisory_folder

SOURCE_BUCKET = "pip::Airlock OSV advisories"
SOURCE = {
    "ID": "osv",
    "Name": "OSV advisories (PyPI) built by airlock-gate db build",
    "URL": "https://osv.dev/list?ecosystem=PyPI",
}
# Trivy treats a DB whose NextUpdate has passed as due for download; offline scans skip that, and
# the gate judges age itself from UpdatedAt (gate.yaml's max_db_age).
NEXT_UPDATE_AFTER = timedelta(hours=24)


class DbBuildError(Exception):
    """The advisories could not be turned into a DB; nothing was written."""


@dataclass(frozen=True)
class DbBuildReport:
    records: int
    """Records read."""
    merged: int
    """Records merged into a vulnerability another record named too."""
    skipped: tuple[SkippedRecord, ...]
    packages: int
    vulnerabilities: int
    seconds: float
    out: Path


def vulnerable_versions(affected: Affected) -> list[str]:
    """Trivy's constraints for one package: one string per interval or listed version, any of which
    matching makes a version vulnerable. A listed version that is not PEP 440 is left out: Trivy
    rejects the whole constraint list for one it cannot parse, and would then match nothing."""
    constraints = [interval.constraint for interval in affected.intervals]
    for text in sorted(affected.versions):
        try:
            Version(text)
        except InvalidVersion:
            continue
        constraints.append(f"=={text}")
    return constraints


def build_db(advisories_dir: Path, out: Path, now: datetime | None = None) -> DbBuildReport:
    """Write `out/db/trivy.db` and `out/db/metadata.json` (a folder for `trivy --cache-dir`).

    Built in a temporary folder beside `out` and renamed into place, so a failure leaves the previous
    DB untouched.
    """
    started = time.perf_counter()
    if not advisories_dir.is_dir():
        raise DbBuildError(f"{advisories_dir}: no such folder of OSV advisories (*.json)")
    try:
        index = read_advisory_folder(advisories_dir)
    except ValueError as exc:
        raise DbBuildError(str(exc)) from None
    now = now or datetime.now(UTC)
    packages: dict[bytes, dict[bytes, bytes]] = {}
    details: dict[bytes, bytes] = {}
    for vulnerability in index.vulnerabilities:
        key = vulnerability.id.encode()
        for name, affected in vulnerability.affected.items():
            packages.setdefault(name.encode(), {})[key] = json.dumps(
                {
                    # PatchedVersions are fixes no record calls affected: Trivy treats a version equal to one
                    # as safe, and one record's fix can lie inside another record's range
                    "PatchedVersions": affected.fixed_versions,
                    "VulnerableVersions": vulnerable_versions(affected),
                    "VendorIDs": list(vulnerability.aliases),
                }
            ).encode()
        details[key] = json.dumps(
            {
                "Title": vulnerability.title,
                "Description": vulnerability.details or vulnerability.title,
                "Severity": vulnerability.severity,
                "References": list(vulnerability.references),
            }
        ).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".airlock-db-", dir=out.parent))
    try:
        (staging / "db").mkdir()
        write_bolt(
            staging / "db" / "trivy.db",
            {
                b"data-source": {SOURCE_BUCKET.encode(): json.dumps(SOURCE).encode()},
                SOURCE_BUCKET.encode(): packages,
                b"vulnerability": details,
            },
        )
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        (staging / "db" / "metadata.json").write_text(
            json.dumps(
                {
                    "Version": 2,
                    "NextUpdate": (now + NEXT_UPDATE_AFTER).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "UpdatedAt": stamp,
                    "DownloadedAt": stamp,
                }
            )
        )
        os.chmod(staging, 0o755)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DbBuildReport(
        index.records, index.merged, index.skipped, len(packages), len(details), time.perf_counter() - started, out
    )


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    retired = out.with_name(out.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
