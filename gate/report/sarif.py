"""`--format sarif`: SARIF 2.1.0, one rule per check, one result per fail/warn finding (blocking
findings first, at most GitHub code scanning's 25,000 per run)."""

from __future__ import annotations

import json

from gate.interface import Finding, Level, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Level.FAIL: "error", Level.WARN: "warning", Level.INFO: "note"}
IMAGE_LEVEL_URI = "Dockerfile"
"""Where a finding about the image as a whole (its base image) is located: GitHub code scanning
rejects the whole file if one result has no location, and a FROM line is what fixes a base image."""
MAX_RESULTS = 25_000
"""GitHub code scanning rejects a run with more results; the rest are counted in a notification
(the JSON report and the audit record keep every finding)."""
_RULES = {
    "vulnerabilities": "Known vulnerability at or above the environment's threshold",
    "secrets": "Secret stored in the image",
    "provenance": "Package not allowed for the environment",
    "base-image": "Image not built on an allowed base image",
}


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~10 ms of imports: only when SARIF is asked for

    try:
        return version("airlock")
    except PackageNotFoundError:
        return "0"


def _result(finding: Finding, rule_index: int) -> dict:
    uri = (finding.path or "").split(":")[0].lstrip("/") or IMAGE_LEVEL_URI
    return {
        "ruleId": finding.check,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.level],
        "message": {"text": f"{finding.title}: {finding.reason}"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
        "properties": {
            k: v
            for k, v in (
                ("package", finding.package),
                ("version", finding.version),
                ("id", finding.id),
                ("severity", finding.severity),
                ("layer", finding.layer),
            )
            if v
        },
    }


def to_sarif(verdict: Verdict) -> str:
    rules = [{"id": rule, "name": rule, "shortDescription": {"text": text}} for rule, text in _RULES.items()]
    index = {rule: n for n, rule in enumerate(_RULES)}
    reported = [f for f in verdict.findings if f.level is Level.FAIL] + [
        f for f in verdict.findings if f.level is Level.WARN
    ]
    notifications = [{"level": "error", "message": {"text": verdict.cause}}] if verdict.cause else []
    if len(reported) > MAX_RESULTS:
        notifications.append(
            {
                "level": "warning",
                "message": {
                    "text": (
                        f"{len(reported) - MAX_RESULTS} of {len(reported)} findings (the least severe) are not in this file: GitHub code scanning accepts "
                        f"{MAX_RESULTS:,} results per run; the JSON report and the audit record have every finding"
                    )
                },
            }
        )
    run = {
        "tool": {
            "driver": {
                "name": "airlock-gate",
                "version": _tool_version(),
                "informationUri": "https://github.com/airlock/airlock",
                "rules": rules,
            }
        },
        "results": [_result(finding, index[finding.check]) for finding in reported[:MAX_RESULTS]],
        "invocations": [
            {
                "executionSuccessful": verdict.cause is None,
                "exitCode": verdict.outcome.exit_code,
                **({"toolExecutionNotifications": notifications} if notifications else {}),
            }
        ],
        "properties": {
            "image": verdict.reference,
            "environment": verdict.environment,
            "decision": verdict.outcome.value,
            "digest": verdict.digest,
            "discarded": list(verdict.discarded),
        },
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"
