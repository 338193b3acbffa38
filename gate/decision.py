"""From a started scan to a recorded verdict: policy, DB check, image, Trivy's facts, the checks,
the decision, the discard of a failing image, and the record (local audit log, then the server).

A problem anywhere is a `GateError`: the verdict is then `Outcome.UNDECIDED` with that cause.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import gate.report  # noqa: F401 - loaded while Trivy scans, so the verdict is reported the moment it is recorded
from gate.checks import ALL_CHECKS, match_base
from gate.images import ImageSource, from_engine
from gate.interface import BaseImage, Finding, GateContext, GateError, ImageFacts, Outcome, Verdict, outcome_of
from gate.policy_source import GatePolicyInputs, ServerClient, load_gate_policy
from gate.record import AuditSink, actor_of, ci_identity, decision_body, findings_text
from gate.registry import BaseImageReader, RegistryClient
from gate.rescan import keep_passed
from gate.scanner.conda_meta import add_to_sbom, conda_packages, with_conda_records
from gate.scanner.process import TrivyRun
from gate.scanner.trivy import Trivy
from gate.vulndb.freshness import StaleDatabase, check_db

if TYPE_CHECKING:
    from gate.scan import ScanRequest
    from mirror.policy import Allowlist


def allowed_bases(allowlist: Allowlist, reader: BaseImageReader) -> tuple[BaseImage, ...] | None:
    """The environment's allowed base images with their layers, read from their upstream registries
    (or through Airlock); None when there is no containers.yaml (the check is then not configured)."""
    from mirror.policy import Ecosystem
    from mirror.policy.containers import allowed_references

    if Ecosystem.CONTAINERS not in allowlist.policy.files:
        return None
    bases = []
    for ref in allowed_references(allowlist, reader.env, reader.tags):
        digest, diff_ids = reader.diff_ids(ref.upstream, ref.repository, ref.reference)
        shown = (
            f"{ref.image}@{ref.reference}" if ref.reference.startswith("sha256:") else f"{ref.image}:{ref.reference}"
        )
        bases.append(BaseImage(shown, digest, diff_ids, ref.rule))
    return tuple(bases)


def judge(
    request: ScanRequest,
    policy: GatePolicyInputs,
    facts: ImageFacts,
    registry: RegistryClient,
    server: ServerClient | None,
) -> list[Finding]:
    bases = allowed_bases(policy.allowlist, BaseImageReader(registry, request.environment, server))
    context = GateContext(
        request.environment,
        facts,
        policy.allowlist,
        policy.thresholds,
        policy.waivers,
        bases,
        match_base(facts.diff_ids, bases) if bases else None,
    )
    findings: list[Finding] = []
    for check in ALL_CHECKS:
        findings += check.run(context)
    return findings


def decide_image(
    request: ScanRequest, binary: Path, scan: TrivyRun | None, target: Path | None, workdir: Path, raw: Path
) -> Verdict:
    """`scan` is Trivy already scanning `target` (what `request.archive` became), or None for an
    image to export first."""
    reference = request.image or str(request.archive)
    source: ImageSource | None = None
    server: ServerClient | None = None
    audit = AuditSink()
    try:
        trivy = Trivy(binary, timeout=request.timeout)
        registry = RegistryClient()
        server = ServerClient(request.server, request.token, registry.client) if request.server else None
        policy = load_gate_policy(request.allowlists, request.waivers, request.environment, server)
        try:
            db_state = check_db(request.db, policy.thresholds.max_db_age)
        except StaleDatabase as exc:
            raise GateError(str(exc)) from None
        if scan is None:
            source = from_engine(request.image, workdir)
            target = source.archive
            scan = trivy.start_scan(target, request.db, raw)
        else:
            source = ImageSource(str(request.archive), request.archive, "archive")
        audit.open()  # while Trivy scans: the database is ready when the verdict is
        conda = conda_packages(target)  # the conda packages Trivy does not list
        facts = trivy.finish_scan(scan, raw)
        if request.sbom:
            trivy.sbom(raw, request.sbom)
            add_to_sbom(request.sbom, conda, facts.packages)
        facts = replace(facts, packages=with_conda_records(facts.packages, conda))
        findings = judge(request, policy, facts, registry, server)
    except GateError as exc:
        verdict = Verdict(
            Outcome.UNDECIDED, reference, request.environment, source.digest if source else None, (), cause=str(exc)
        )
        return _record(verdict, server, audit)
    finally:
        if scan is not None:
            scan.stop()
    outcome = outcome_of(findings)
    digest = source.digest or facts.image_id
    verdict = Verdict(outcome, reference, request.environment, digest, tuple(findings), facts=facts)
    if outcome is Outcome.FAIL:
        verdict = replace(verdict, discarded=tuple(source.discard(registry)))
    recorded = _record(
        verdict,
        server,
        audit,
        {
            "image_id": facts.image_id,
            "layers": list(facts.diff_ids),
            "scanner": facts.scanner,
            "policy": list(policy.sources),
            "db_updated_at": db_state.updated_at.isoformat(),
        },
    )
    if recorded.outcome is Outcome.PASS:
        try:
            keep_passed(recorded, raw)  # Trivy's report: `rescan` makes the SBOM from it when it runs
        except OSError as exc:  # the decision stands; only the later rescan of this image is lost
            print(f"airlock-gate: warning: the SBOM was not kept for `rescan` ({exc.strerror})", file=sys.stderr)
    return recorded


def record_undecided(request: ScanRequest, cause: str) -> Verdict:
    """Trivy could not even start (missing binary, unreadable archive): recorded locally."""
    verdict = Verdict(
        Outcome.UNDECIDED, request.image or str(request.archive), request.environment, None, (), cause=cause
    )
    return _record(verdict, None, AuditSink())


def record_verdict(verdict: Verdict, server: ServerClient | None) -> Verdict:
    """Record a decision made outside a scan (a rescan's): the local audit log, then the server."""
    return _record(verdict, server, AuditSink())


def _record(verdict: Verdict, server: ServerClient | None, audit: AuditSink, extra: dict | None = None) -> Verdict:
    """Audit locally, then report to the server. A decision that cannot be recorded cannot deploy."""
    ci = ci_identity()
    body = decision_body(verdict, ci, extra or {})
    try:
        audit_id = audit.append(body, actor_of(ci), findings_text(verdict.findings))
    except Exception as exc:  # any database error: the record is what must not be lost
        return _unrecorded(
            verdict,
            f"the decision could not be written to the local audit log ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); check AIRLOCK_DATA_DIR / AIRLOCK_DATABASE_URL",
        )
    verdict = replace(verdict, audit_id=audit_id)
    if server is not None:
        try:
            server.post_decision(body)
        except GateError as exc:
            return _unrecorded(verdict, f"{exc} (recorded locally as audit record #{audit_id})")
    return verdict


def _unrecorded(verdict: Verdict, cause: str) -> Verdict:
    """A pass that could not be recorded must not deploy; a fail stays a fail (the image is gone)."""
    return replace(
        verdict, outcome=Outcome.UNDECIDED if verdict.outcome is Outcome.PASS else verdict.outcome, cause=cause
    )
