"""`--format json`: one object, schema `airlock-gate/1` (documented in the README)."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from typing import Any

from gate.interface import Verdict
from gate.record import finding_dicts, findings_text
from mirror.audit.chain import spliced

SCHEMA = "airlock-gate/1"


def as_document(verdict: Verdict) -> dict[str, Any]:
    """The report as a dict; its findings are the dicts the audit record was made from."""
    facts = verdict.facts
    counts = Counter((f.check, f.level.value) for f in verdict.findings)
    return {
        "schema": SCHEMA,
        "image": verdict.reference,
        "environment": verdict.environment,
        "decision": verdict.outcome.value,
        "exit_code": verdict.outcome.exit_code,
        "cause": verdict.cause,
        "digest": verdict.digest,
        "image_id": facts.image_id if facts else None,
        "scanner": facts.scanner if facts else None,
        "layers": list(facts.diff_ids) if facts else [],
        "summary": {f"{check}.{level}": n for (check, level), n in sorted(counts.items())},
        "findings": finding_dicts(verdict.findings),
        "discarded": list(verdict.discarded),
        "audit_id": verdict.audit_id,
    }


_compact = partial(json.dumps, separators=(",", ":"))


def to_json(verdict: Verdict) -> str:
    """One line for machines (`jq .` shows it indented): with `indent`, json falls back to its pure
    Python encoder, 80 ms for an image with 2,000 findings, on every gate run. The findings are
    the audit record's text when it is ASCII (nearly always; then it is what `json.dumps` would
    write, but for key order), so they are serialised once per run."""
    text = findings_text(verdict.findings)
    if not text.isascii():
        return _compact(as_document(verdict)) + "\n"
    return spliced(as_document(verdict), "findings", text, _compact) + "\n"
