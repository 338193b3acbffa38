"""The gate's terminal report: every blocking finding, every non-vulnerability warning, and the
most severe vulnerabilities below the threshold; the rest counted, not listed. And the SARIF report's
limit."""

from __future__ import annotations

import json

import jsonschema

from gate.interface import Finding, Level, Outcome, Verdict
from gate.report.sarif import MAX_RESULTS, to_sarif
from gate.report.table import SHOWN_BELOW_THRESHOLD, to_table


def _vulnerability(n: int, level: Level, severity: str) -> Finding:
    return Finding(
        "vulnerabilities",
        level,
        f"CVE-2026-{n:05d} in pkg{n} 1.0",
        f"{severity} ...; upgrade pkg{n} to 2.0",
        package=f"pkg{n}",
        version="1.0",
        id=f"CVE-2026-{n:05d}",
        severity=severity,
    )


def test_a_long_warning_list_keeps_blocking_findings_and_secrets_in_sight():
    # As VulnerabilityCheck orders them: most severe first.
    below = [_vulnerability(n, Level.WARN, "MEDIUM") for n in range(3)] + [
        _vulnerability(n, Level.WARN, "LOW") for n in range(3, 60)
    ]
    findings = (
        Finding("base-image", Level.WARN, "base image not checked", "not configured: no containers.yaml"),
        _vulnerability(900, Level.FAIL, "CRITICAL"),
        *below,
        Finding(
            "secrets",
            Level.WARN,
            "AWS access key ID in /app/.env",
            "a secret in the image: remove it",
            severity="CRITICAL",
        ),
    )
    text = to_table(Verdict(Outcome.FAIL, "app:1", "prod", "sha256:abc", findings, audit_id=12))

    assert "Blocking findings (1):" in text and "CVE-2026-00900 in pkg900 1.0" in text
    assert "Warnings (62):" in text
    assert "base image not checked" in text and "AWS access key ID in /app/.env" in text
    listed = [n for n in range(60) if f"CVE-2026-{n:05d} in pkg{n} 1.0" in text]
    assert listed == list(range(SHOWN_BELOW_THRESHOLD))
    assert (
        f"... and {60 - SHOWN_BELOW_THRESHOLD} more vulnerabilities below the threshold (LOW {60 - SHOWN_BELOW_THRESHOLD}): "
        "every finding is in the JSON report (--format json, --report FILE.json) and in the audit record"
    ) in text
    assert text.rstrip().endswith("Audit record: #12")


def test_a_short_warning_list_is_listed_whole():
    findings = tuple(_vulnerability(n, Level.WARN, "LOW") for n in range(SHOWN_BELOW_THRESHOLD))
    text = to_table(Verdict(Outcome.PASS, "app:1", "prod", "sha256:abc", findings))
    assert all(f"CVE-2026-{n:05d} in pkg{n} 1.0" in text for n in range(SHOWN_BELOW_THRESHOLD))
    assert "more vulnerabilities below the threshold" not in text


def test_sarif_keeps_blocking_findings_within_githubs_result_limit(sarif_schema):
    """GitHub code scanning rejects a run of more than 25,000 results: the least severe are left out, and said so."""
    warnings = [_vulnerability(n, Level.WARN, "LOW") for n in range(MAX_RESULTS + 10)]
    findings = (*warnings, _vulnerability(99_999, Level.FAIL, "CRITICAL"))
    document = json.loads(to_sarif(Verdict(Outcome.FAIL, "app:1", "prod", "sha256:abc", findings)))
    jsonschema.validate(document, sarif_schema)
    [run] = document["runs"]
    assert len(run["results"]) == MAX_RESULTS
    assert run["results"][0]["level"] == "error" and run["results"][0]["properties"]["id"] == "CVE-2026-99999"
    [note] = run["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == "warning" and note["message"]["text"].startswith(
        f"11 of {MAX_RESULTS + 11} findings (the least severe) are not in this file"
    )
