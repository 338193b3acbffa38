"""The image must be built on an allowed base: its bottom layers equal an allowed base's layers."""

from __future__ import annotations

from gate.interface import BaseImage, Check, Finding, GateContext, Level


def match_base(diff_ids: tuple[str, ...], bases: tuple[BaseImage, ...]) -> BaseImage | None:
    """The allowed base with the most layers that the image starts with."""
    fitting = [b for b in bases if b.diff_ids and diff_ids[: len(b.diff_ids)] == b.diff_ids]
    return max(fitting, key=lambda b: len(b.diff_ids), default=None)


class BaseImageCheck(Check):
    name = "base-image"

    def run(self, context: GateContext) -> list[Finding]:
        if context.base_images is None:
            return [
                Finding(
                    check=self.name,
                    level=Level.WARN,
                    title="base image not checked",
                    reason="not configured: no containers.yaml in the allowlists, so the base image was not verified "
                    "(every Python and conda package in the image was checked against the allowlist instead)",
                )
            ]
        base = context.base
        if base is not None:
            return [
                Finding(
                    check=self.name,
                    level=Level.INFO,
                    title=f"built on {base.reference}",
                    rule=base.rule,
                    reason=f"bottom {len(base.diff_ids)} layer(s) equal allowed base {base.reference}@{base.digest} ({base.rule})",
                )
            ]
        allowed = ", ".join(sorted({b.reference for b in context.base_images})) or "none"
        return [
            Finding(
                check=self.name,
                level=Level.FAIL,
                title="not built on an allowed base image",
                reason=(
                    f"the image's bottom layers match no base image allowed for {context.environment} "
                    f"(allowed: {allowed}); build FROM one of them, or request an exception for your base image"
                ),
            )
        ]
