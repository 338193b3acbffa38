"""`airlock-gate scan`: policy → DB check → image → Trivy → checks → verdict → discard → record.

Every way of not knowing ends in `Outcome.UNDECIDED` with its cause (exit 2, nothing deploys);
a failing image is discarded before the verdict is reported, and the verdict is recorded whatever it is.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from gate.checks import ALL_CHECKS, match_base
from gate.images import ImageSource, from_archive, from_engine
from gate.interface import BaseImage, Finding, GateContext, GateError, ImageFacts, Outcome, Verdict, decide
from gate.policy_source import GatePolicyInputs, ServerClient, load_gate_policy
from gate.record import actor_of, append_local, ci_identity, decision_body
from gate.registry import RegistryClient
from gate.scanner import Trivy, find_trivy
from gate.vulndb import StaleDatabase, check_db
from mirror.policy import Allowlist, Ecosystem
from mirror.policy.containers import allowed_references


@dataclass(frozen=True)
class ScanRequest:
    environment: str
    image: str | None
    archive: Path | None
    allowlists: Path
    waivers: Path | None
    db: Path
    server: str | None
    token: str | None
    trivy: str | None
    timeout: float
    sbom: Path | None
    trivy_report: Path | None = None


def allowed_bases(allowlist: Allowlist, env: str, registry: RegistryClient) -> tuple[BaseImage, ...] | None:
    """The environment's allowed base images with their layers, read from their upstream registries;
    None when there is no containers.yaml (the check is then not configured)."""
    if Ecosystem.CONTAINERS not in allowlist.policy.files:
        return None
    bases = []
    for ref in allowed_references(allowlist, env, registry.tags):
        digest, diff_ids = registry.diff_ids(ref.upstream.url, ref.repository, ref.reference)
        shown = f"{ref.image}@{ref.reference}" if ref.reference.startswith("sha256:") else f"{ref.image}:{ref.reference}"
        bases.append(BaseImage(shown, digest, diff_ids, ref.rule))
    return tuple(bases)


def judge(request: ScanRequest, policy: GatePolicyInputs, facts: ImageFacts, registry: RegistryClient, db_age) -> list[Finding]:
    bases = allowed_bases(policy.allowlist, request.environment, registry)
    matched = match_base(facts.diff_ids, bases) if bases else None
    context = GateContext(request.environment, facts, policy.allowlist, policy.thresholds, policy.waivers, bases, db_age,
                          frozenset(matched.diff_ids) if matched else frozenset())
    findings: list[Finding] = []
    for check in ALL_CHECKS:
        findings += check.run(context)
    return findings


def run_scan(request: ScanRequest, http: httpx.Client | None = None) -> Verdict:
    http = http or httpx.Client(timeout=60, follow_redirects=True)
    registry = RegistryClient(http)
    server = ServerClient(request.server, request.token, http) if request.server else None
    reference = request.image or str(request.archive)
    source: ImageSource | None = None
    with tempfile.TemporaryDirectory(prefix="airlock-gate-") as workdir:
        try:
            policy = load_gate_policy(request.allowlists, request.waivers, request.environment, server)
            try:
                db_state = check_db(request.db, policy.thresholds.max_db_age)
            except StaleDatabase as exc:
                raise GateError(str(exc)) from None
            trivy = Trivy(find_trivy(request.trivy), timeout=request.timeout)
            source = from_archive(request.archive) if request.archive else from_engine(request.image, Path(workdir), registry)
            raw = request.trivy_report or Path(workdir) / "trivy.json"
            facts = trivy.scan(source.archive, request.db, raw)
            if request.sbom:
                trivy.sbom(raw, request.sbom)
            findings = judge(request, policy, facts, registry, db_state.age)
        except GateError as exc:
            verdict = Verdict(Outcome.UNDECIDED, reference, request.environment, source.digest if source else None, (), cause=str(exc))
            return _record(verdict, server)
        outcome = decide(findings)
        digest = source.digest or facts.image_id
        verdict = Verdict(outcome, reference, request.environment, digest, tuple(findings), facts=facts)
        if outcome is Outcome.FAIL:
            verdict = replace(verdict, discarded=tuple(source.discard(registry)))
        return _record(verdict, server, {"image_id": facts.image_id, "layers": list(facts.diff_ids), "scanner": facts.scanner,
                                         "policy": list(policy.sources), "db_updated_at": db_state.updated_at.isoformat()})


def _record(verdict: Verdict, server: ServerClient | None, extra: dict | None = None) -> Verdict:
    """Audit locally, then report to the server. A decision that cannot be recorded cannot deploy."""
    ci = ci_identity()
    body = decision_body(verdict, ci, extra or {})
    try:
        audit_id = append_local(body, actor_of(ci))
    except Exception as exc:  # any database error: the record is what must not be lost
        return replace(verdict, outcome=Outcome.UNDECIDED if verdict.outcome is Outcome.PASS else verdict.outcome,
                       cause=f"the decision could not be written to the local audit log ({exc.__class__.__name__}: {str(exc)[:200]}); "
                             "check AIRLOCK_DATA_DIR / AIRLOCK_DATABASE_URL")
    verdict = replace(verdict, audit_id=audit_id)
    if server is not None:
        try:
            server.post_decision(body)
        except GateError as exc:
            return replace(verdict, outcome=Outcome.UNDECIDED if verdict.outcome is Outcome.PASS else verdict.outcome,
                           cause=f"{exc} (recorded locally as audit record #{audit_id})")
    return verdict
