"""After deployment: each image that passed keeps its SBOM beside its decision, and `airlock-gate
rescan` re-judges those SBOMs against today's vulnerability DB (Trivy's `sbom` mode: no image
needed), reporting the images that would fail now. A newly failing image is recorded as a gate
decision (`fail`, with the cause `rescan: …`) in the audit log and, with `--server`, reported to
Airlock, whose `gate.decision` webhook tells whoever runs it.

    DATA_DIR/gate/passed/{audit id}/trivy.json      Trivy's report of the scan that passed it
    DATA_DIR/gate/passed/{audit id}/sbom.cdx.json   its CycloneDX SBOM, made from that report by the
                                                    first rescan (a copy costs the gate nothing)
    DATA_DIR/gate/passed/{audit id}/decision.json   image, digest, environment, decided_at, last rescan
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate.errors import GateError
from gate.interface import Finding, GateContext, Level, Outcome, Verdict

KEPT = ("gate", "passed")


def kept_root() -> Path:
    from mirror.store.location import data_dir

    return data_dir().joinpath(*KEPT)


def keep_passed(verdict: Verdict, report: Path, root: Path | None = None) -> Path:
    """File a passed image's Trivy report with its decision (the audit record's number names the folder)."""
    folder = (root or kept_root()) / f"{verdict.audit_id or 0:010d}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report, folder / "trivy.json")
    decision = {
        "image": verdict.reference,
        "digest": verdict.digest,
        "environment": verdict.environment,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "audit_id": verdict.audit_id,
        "rescan": None,
    }
    (folder / "decision.json").write_text(json.dumps(decision, indent=2) + "\n")
    return folder


@dataclass(frozen=True)
class Rescanned:
    folder: Path
    image: str
    digest: str | None
    environment: str
    decided_at: str
    findings: tuple[Finding, ...]
    newly_failing: bool

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.FAIL]

    def as_dict(self) -> dict:
        return {
            "image": self.image,
            "digest": self.digest,
            "environment": self.environment,
            "passed_at": self.decided_at,
            "would_fail": bool(self.failures),
            "newly_failing": self.newly_failing,
            "blocking": [{"title": f.title, "reason": f.reason} for f in self.failures],
        }


def kept_decisions(root: Path, since: timedelta) -> list[tuple[Path, dict]]:
    cutoff = datetime.now(UTC) - since
    found = []
    for decision_file in sorted(root.glob("*/decision.json")):
        try:
            decision = json.loads(decision_file.read_text())
            if datetime.fromisoformat(decision["decided_at"]) >= cutoff:
                found.append((decision_file.parent, decision))
        except (OSError, ValueError, KeyError) as exc:
            raise GateError(
                f"{decision_file} is not a kept gate decision ({exc.__class__.__name__}): remove it"
            ) from None
    return found


def rescan(
    root: Path, since: timedelta, db: Path, allowlists: Path, waivers: Path | None, binary: Path, timeout: float
) -> list[Rescanned]:
    """Re-judge every kept SBOM of the last `since` against the DB in `db`; the newest state of each
    is written back, so that `newly_failing` is true once per image."""
    from gate.checks.vulnerabilities import VulnerabilityCheck
    from gate.policy_source import load_gate_policy
    from gate.scanner.models import TrivyReport
    from gate.scanner.process import TrivyRun, offline_json_args
    from gate.scanner.trivy import Trivy, facts_from_report

    results = []
    policies: dict[str, object] = {}
    for folder, decision in kept_decisions(root, since):
        env = decision["environment"]
        policy = policies.get(env) or policies.setdefault(env, load_gate_policy(allowlists, waivers, env, None))
        sbom = folder / "sbom.cdx.json"
        if not sbom.exists():
            Trivy(binary, timeout).sbom(folder / "trivy.json", sbom)
        report_json = folder / "rescan.json"
        TrivyRun(
            binary,
            ["sbom", *offline_json_args(db, report_json, "vuln"), str(sbom)],
            "SBOM rescan",
            timeout,
        ).wait()
        report = TrivyReport.model_validate_json(report_json.read_bytes())
        facts = facts_from_report(report, "trivy sbom")
        context = GateContext(env, facts, policy.allowlist, policy.thresholds, policy.waivers, None, None)
        findings = tuple(VulnerabilityCheck().run(context))
        failing = any(f.level is Level.FAIL for f in findings)
        was_failing = bool((decision.get("rescan") or {}).get("would_fail"))
        decision["rescan"] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "would_fail": failing}
        (folder / "decision.json").write_text(json.dumps(decision, indent=2) + "\n")
        results.append(
            Rescanned(
                folder,
                decision["image"],
                decision.get("digest"),
                env,
                decision["decided_at"],
                findings,
                failing and not was_failing,
            )
        )
    return results


def as_verdict(result: Rescanned) -> Verdict:
    """A newly failing image as a gate decision to record (and report to the server)."""
    return Verdict(
        Outcome.FAIL,
        result.image,
        result.environment,
        result.digest,
        result.findings,
        cause=f"rescan: passed on {result.decided_at}, would fail today with {len(result.failures)} blocking finding(s)",
    )
