"""A gate decision's findings are serialised once and spliced into the audit record and the JSON
report: what each carries must be exactly what a full serialisation would have written."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import pytest

from gate.interface import Finding, ImageFacts, Level, Outcome, Verdict
from gate.record import findings_text
from gate.report.json_report import as_document, to_json
from mirror.audit.chain import canonical, spliced

compact = partial(json.dumps, separators=(",", ":"))


@pytest.mark.parametrize(
    "document",
    [
        {"findings": [{"b": 1, "a": "x"}]},
        {"zeta": 1, "findings": [{"title": "ünïcode \u2028"}], "alpha": [1, 2], "none": None},
        {"findings": [], "after": {"n": 1.5}},
        {"before": "s", "findings": [{"x": True}]},
    ],
)
@pytest.mark.parametrize("dumps", [canonical, compact], ids=["canonical", "compact"])
def test_spliced_is_the_serialisation_it_replaces(document, dumps):
    assert spliced(document, "findings", dumps(document["findings"]), dumps) == dumps(document)


def _verdict(title: str) -> Verdict:
    findings = tuple(
        Finding(
            "vulnerabilities",
            Level.INFO if n % 2 else Level.FAIL,
            f"{title} {n}",
            "upgrade it",
            package=f"pkg{n}",
            version="1.0",
            id=f"CVE-2026-{n}",
            severity="LOW",
        )
        for n in range(5)
    )
    facts = ImageFacts("app:1", "sha256:abc", ("sha256:l1",), (), (), (), "trivy 0.76.0")
    return Verdict(Outcome.FAIL, "app:1", "prod", "sha256:abc", findings, facts=facts)


@pytest.mark.parametrize("title", ["CVE in requests", "Überlauf in lib‐x"], ids=["ascii", "non-ascii"])
def test_json_report_is_the_whole_document_on_one_ascii_line(title):
    verdict = replace(_verdict(title), audit_id=7)  # as the gate reports it: after the record, same findings
    findings_text(verdict.findings)  # made for the audit record first, as the gate does
    report = to_json(verdict)
    assert report.endswith("\n") and report.count("\n") == 1 and report.isascii()
    assert json.loads(report) == json.loads(json.dumps(as_document(verdict)))
    assert json.loads(report)["findings"][0] == {
        "check": "vulnerabilities",
        "level": "fail",
        "title": f"{title} 0",
        "reason": "upgrade it",
        "package": "pkg0",
        "version": "1.0",
        "id": "CVE-2026-0",
        "severity": "LOW",
    }


def test_findings_text_follows_the_verdict_it_is_asked_for():
    first, second = _verdict("first"), _verdict("second")
    assert json.loads(findings_text(first.findings))[0]["title"] == "first 0"
    assert json.loads(findings_text(second.findings))[0]["title"] == "second 0"
    assert findings_text(first.findings) == canonical([f.as_dict() for f in first.findings])
