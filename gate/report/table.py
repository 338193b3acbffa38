"""The terminal report: what blocked the image and what to do, then what was only noted."""

from __future__ import annotations

from collections import Counter

from gate.interface import Level, Outcome, Verdict
from mirror.cli.tables import render_table

_HEADLINE = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.UNDECIDED: "COULD NOT DECIDE"}


def to_table(verdict: Verdict) -> str:
    lines = [f"airlock-gate: {_HEADLINE[verdict.outcome]} {verdict.reference} for {verdict.environment}"
             + (f" ({verdict.digest})" if verdict.digest else "")]
    if verdict.cause:
        lines.append(f"cause: {verdict.cause}")
    for level, heading in ((Level.FAIL, "Blocking findings"), (Level.WARN, "Warnings")):
        rows = [(f.check, f.severity or "-", f.title, f.reason) for f in verdict.findings if f.level is level]
        if rows:
            lines += ["", f"{heading} ({len(rows)}):", render_table(("CHECK", "SEVERITY", "WHAT", "WHY / FIX"), rows)]
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
