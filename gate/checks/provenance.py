"""Every Python and conda package added above the allowed base must be allowed for the environment,
by the allowlist files or an approved exception: this keeps unvetted packages out of production."""

from __future__ import annotations

from gate.interface import Check, Finding, GateContext, Level
from mirror.policy import Ecosystem, UnknownEnvironment
from mirror.policy.conditions import IMAGE_SKIPPED_CONDITIONS, ReleaseFacts

_ECOSYSTEM = {"python": Ecosystem.PYPI, "conda": Ecosystem.CONDA}


class ProvenanceCheck(Check):
    name = "provenance"

    def run(self, context: GateContext) -> list[Finding]:
        findings = []
        base_layers = context.base.diff_ids if context.base else ()
        for package in sorted(context.facts.packages, key=lambda p: (p.kind, p.name.lower(), p.version)):
            base = dict(
                check=self.name,
                package=package.name,
                version=package.version,
                path=package.path,
                layer=package.layer,
                title=f"{package.kind} package {package.name} {package.version}",
            )
            if package.layer is not None and package.layer in base_layers:
                findings.append(
                    Finding(level=Level.INFO, reason="part of the allowed base image (vetted with it)", **base)
                )
                continue
            if package.installed_by is not None:  # conda's numpy ships numpy's dist-info: one package, vetted as conda
                findings.append(
                    Finding(level=Level.INFO, reason=f"installed by {package.installed_by}, vetted as that", **base)
                )
                continue
            ecosystem = _ECOSYSTEM[package.kind]
            try:
                # The licence condition applies here; advisories are the vulnerability check's (Trivy's
                # DB), and an image holds no upload times (age is judged when a file is served).
                decision = context.allowlist.judge(
                    ecosystem,
                    context.environment,
                    package.name,
                    package.version,
                    ReleaseFacts(licence=package.licence),
                    package.build,
                    skip=IMAGE_SKIPPED_CONDITIONS,
                )
            except UnknownEnvironment:
                findings.append(
                    Finding(
                        level=Level.FAIL,
                        reason=(
                            f"there is no {ecosystem.value} allowlist for {context.environment}: nothing {ecosystem.value} can be vetted; "
                            f"declare the environment in {ecosystem.value}.yaml"
                        ),
                        **base,
                    )
                )
                continue
            findings.append(
                Finding(
                    level=Level.INFO if decision.allowed else Level.FAIL,
                    reason=decision.reason,
                    rule=decision.rule,
                    **base,
                )
            )
        return findings
