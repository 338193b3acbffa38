"""The terminal report: what blocked the image and what to do, then what was only noted."""

from __future__ import annotations

from collections import Counter

from gate.interface import SEVERITY_ORDER, Finding, Level, Outcome, Verdict
from mirror.terminal import render_table

_HEADLINE = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.UNDECIDED: "COULD NOT DECIDE"}
SHOWN_BELOW_THRESHOLD = 20
"""Vulnerabilities below the threshold listed in the terminal (the most severe; they come sorted).
An ML image can carry thousands: listed in full they would push the blocking findings out of
sight in a CI log. The rest are counted; every one is in the JSON report and the audit record."""


def to_table(verdict: Verdict) -> str:
    lines = [
        f"airlock-gate: {_HEADLINE[verdict.outcome]} {verdict.reference} for {verdict.environment}"
        + (f" ({verdict.digest})" if verdict.digest else "")
    ]
    if verdict.cause:
        lines.append(f"cause: {verdict.cause}")
    for level, heading in ((Level.FAIL, "Blocking findings"), (Level.WARN, "Warnings")):
        listed = [f for f in verdict.findings if f.level is level]
        shown, hidden = _shown(listed) if level is Level.WARN else (listed, [])
        if listed:
            rows = [(f.check, f.severity or "-", f.title, f.reason) for f in shown]
            lines += ["", f"{heading} ({len(listed)}):", render_table(("CHECK", "SEVERITY", "WHAT", "WHY / FIX"), rows)]
        if hidden:
            lines.append(_not_listed(hidden))
    passed = Counter(f.check for f in verdict.findings if f.level is Level.INFO)
    if passed:
        lines += ["", "Passed: " + ", ".join(f"{check} {n}" for check, n in sorted(passed.items()))]
    waived = [f for f in verdict.findings if f.level is Level.INFO and f.check == "vulnerabilities"]
    lines += [f"  waived: {f.title}: {f.reason}" for f in waived]
    if verdict.discarded:
        lines += ["", "Discarded: " + "; ".join(verdict.discarded)]
    if verdict.audit_id is not None:
        lines.append(f"Audit record: #{verdict.audit_id}")
    return "\n".join(lines) + "\n"


def _shown(warnings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """Every other warning (base image, secrets), and the first SHOWN_BELOW_THRESHOLD vulnerabilities."""
    below = [f for f in warnings if f.check == "vulnerabilities"]
    hidden = below[SHOWN_BELOW_THRESHOLD:]
    dropped = set(map(id, hidden))
    return [f for f in warnings if id(f) not in dropped], hidden


def _not_listed(hidden: list[Finding]) -> str:
    by_severity = Counter(f.severity or "UNKNOWN" for f in hidden)
    ranked = sorted(
        by_severity.items(), key=lambda item: -SEVERITY_ORDER.index(item[0]) if item[0] in SEVERITY_ORDER else 0
    )
    counts = ", ".join(f"{severity} {n}" for severity, n in ranked)
    return (
        f"... and {len(hidden)} more vulnerabilities below the threshold ({counts}): every finding is in "
        "the JSON report (--format json, --report FILE.json) and in the audit record"
    )
