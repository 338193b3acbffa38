"""Vulnerabilities at or above the environment's threshold fail, unless an unexpired waiver covers them."""

from __future__ import annotations

from datetime import UTC, datetime

from packaging.version import InvalidVersion

from gate.interface import SEVERITY_ORDER, Check, Finding, GateContext, Level, Vulnerability
from mirror.policy.gate_rules import Waiver
from mirror.policy.pypi import normalize

_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}
"""Most severe first in the report; a severity Trivy may add later sorts with UNKNOWN."""


def _covers(waiver: Waiver, vuln: Vulnerability, env: str) -> bool:
    if waiver.id not in (vuln.id, *vuln.vendor_ids):
        return False
    if waiver.environments is not None and env not in waiver.environments:
        return False
    if waiver.package is not None and normalize(waiver.package) != normalize(vuln.package):
        return False
    if waiver.versions is not None:
        try:
            return waiver.versions.contains(vuln.version, prereleases=True)
        except InvalidVersion:
            return False
    return True


class VulnerabilityCheck(Check):
    name = "vulnerabilities"

    def run(self, context: GateContext) -> list[Finding]:
        now = datetime.now(UTC)
        thresholds = context.thresholds
        below = f"is below the {context.environment} threshold ({', '.join(sorted(thresholds.fail_on))})"
        does = "fails" if thresholds.unknown == "fail" else "only warns"
        unrated = (
            f"has no severity: no advisory source rated it, and {context.environment} {does} on unrated "
            f"vulnerabilities (gate.yaml unknown: {thresholds.unknown})"
        )
        findings = []
        ordered = sorted(context.facts.vulnerabilities, key=lambda v: (-_RANK.get(v.severity, 0), v.package, v.id))
        for vuln in ordered:
            fix = (
                f"upgrade {vuln.package} to {vuln.fixed_version}"
                if vuln.fixed_version
                else "no fixed version yet: remove the package or waive with a reason"
            )
            base = dict(
                check=self.name,
                package=vuln.package,
                version=vuln.version,
                id=vuln.id,
                severity=vuln.severity,
                path=vuln.path,
                layer=vuln.layer,
                title=f"{vuln.id} in {vuln.package} {vuln.version}",
            )
            judged = unrated if vuln.severity == "UNKNOWN" else None
            if not thresholds.blocks(vuln.severity):
                findings.append(Finding(level=Level.WARN, reason=f"{vuln.severity} {judged or below}; {fix}", **base))
                continue
            covering = [w for w in context.waivers if _covers(w, vuln, context.environment)]
            active = [w for w in covering if w.expires_at > now]
            if active:
                waiver = active[0]
                findings.append(
                    Finding(
                        level=Level.INFO,
                        rule=f"{waiver.file}:{waiver.line}",
                        reason=(
                            f"{vuln.severity}, waived by {waiver.file}:{waiver.line} until {waiver.expires_at:%Y-%m-%d} "
                            f"(approved by {waiver.approved_by}: {waiver.reason})"
                        ),
                        **base,
                    )
                )
                continue
            expired = (
                f"; the waiver at {covering[0].file}:{covering[0].line} expired on {covering[0].expires_at:%Y-%m-%d}"
                if covering
                else ""
            )
            verdict = judged or f"is at or above the {context.environment} threshold"
            findings.append(
                Finding(
                    level=Level.FAIL,
                    reason=(
                        f"{vuln.severity} ({vuln.title or 'no title'}) {verdict}{expired}; "
                        f"{fix}, or add a waiver with a reason and an end date to waivers.yaml"
                    ),
                    **base,
                )
            )
        return findings
