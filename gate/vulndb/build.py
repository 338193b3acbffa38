"""`airlock-gate db build`: OSV advisories (PyPI ecosystem) → a Trivy DB v2 folder.

Layout (Trivy's integration/testdata/fixtures/db/*.yaml): bucket `data-source` maps each source
bucket to its description; the source bucket `pip::…` holds one nested bucket per normalised package
name mapping a vulnerability id to `{PatchedVersions, VulnerableVersions}`; bucket `vulnerability`
maps the id to `{Title, Description, Severity, References, ...}`. `db/metadata.json` says when the
data was made, which is what the gate's `max_db_age` checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mirror.policy.advisories import Advisory, read_advisory_folder
from gate.vulndb.bolt import write_bolt

SOURCE_BUCKET = "pip::Airlock OSV advisories"
SOURCE = {"ID": "osv", "Name": "OSV advisories (PyPI) built by airlock-gate db build", "URL": "https://osv.dev/list?ecosystem=PyPI"}
# Trivy treats a DB whose NextUpdate has passed as due for download; offline scans skip that, and
# the gate judges age itself from UpdatedAt (gate.yaml's max_db_age).
NEXT_UPDATE_AFTER = timedelta(hours=24)


class DbBuildError(Exception):
    """The advisories could not be turned into a DB; nothing was written."""


@dataclass(frozen=True)
class DbBuildReport:
    advisories: int
    packages: int
    vulnerabilities: int
    seconds: float
    out: Path


def trivy_id(advisory: Advisory) -> str:
    """Trivy reports GHSA advisories under their CVE when one exists; do the same, so a waiver by CVE
    works and the OSV id stays in VendorIDs."""
    cves = sorted(alias for alias in advisory.aliases if alias.startswith("CVE-"))
    return cves[0] if cves else advisory.id


def vulnerable_versions(advisory: Advisory) -> list[str]:
    """OSV ranges as Trivy's PEP 440 constraints: one string per interval, `, ` meaning "and"."""
    constraints = []
    for introduced, fixed, last_affected in advisory.ranges:
        parts = [f">={introduced}"] if introduced and introduced != "0" else []
        if fixed:
            parts.append(f"<{fixed}")
        if last_affected:
            parts.append(f"<={last_affected}")
        constraints.append(", ".join(parts) or ">=0")
    constraints += [f"=={version}" for version in sorted(advisory.versions)]
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
        by_package = read_advisory_folder(advisories_dir)
    except ValueError as exc:
        raise DbBuildError(str(exc)) from None
    now = now or datetime.now(timezone.utc)
    packages: dict[bytes, dict[bytes, bytes]] = {}
    details: dict[bytes, bytes] = {}
    count = 0
    for name, advisories in by_package.items():
        bucket = packages.setdefault(name.encode(), {})
        for advisory in advisories:
            count += 1
            vuln_id = trivy_id(advisory)
            bucket[vuln_id.encode()] = json.dumps({
                "PatchedVersions": advisory.fixed_versions,
                "VulnerableVersions": vulnerable_versions(advisory),
                "VendorIDs": [advisory.id] if advisory.id != vuln_id else [],
            }).encode()
            details[vuln_id.encode()] = json.dumps({
                "Title": advisory.summary, "Description": advisory.details or advisory.summary,
                "Severity": advisory.severity, "References": list(advisory.references),
            }).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".airlock-db-", dir=out.parent))
    try:
        (staging / "db").mkdir()
        write_bolt(staging / "db" / "trivy.db", {
            b"data-source": {SOURCE_BUCKET.encode(): json.dumps(SOURCE).encode()},
            SOURCE_BUCKET.encode(): packages,
            b"vulnerability": details,
        })
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        (staging / "db" / "metadata.json").write_text(json.dumps({
            "Version": 2, "NextUpdate": (now + NEXT_UPDATE_AFTER).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "UpdatedAt": stamp, "DownloadedAt": stamp,
        }))
        os.chmod(staging, 0o755)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DbBuildReport(count, len(packages), len(details), time.perf_counter() - started, out)


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    retired = out.with_name(out.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
