"""Secrets baked into an image (private keys, cloud credentials, tokens) fail it."""

from __future__ import annotations

from gate.interface import Check, Finding, GateContext, Level


class SecretsCheck(Check):
    name = "secrets"

    def run(self, context: GateContext) -> list[Finding]:
        level = Level.FAIL if context.thresholds.secrets == "fail" else Level.WARN
        # Trivy masks the secret in its report; the gate never prints or records the value either.
        return [
            Finding(
                check=self.name,
                level=level,
                id=secret.rule_id,
                severity=secret.severity,
                path=f"{secret.path}:{secret.line}",
                layer=secret.layer,
                title=f"{secret.title} in {secret.path}:{secret.line}",
                reason=(
                    f"{secret.title} ({secret.category or 'credential'}, Trivy rule {secret.rule_id}) is stored in the image "
                    f"at {secret.path} line {secret.line}; "
                    "remove it from the build (and from earlier layers), rotate it, and pass secrets at run time instead"
                ),
            )
            for secret in context.facts.secrets
        ]
