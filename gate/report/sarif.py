"""`--format sarif`: SARIF 2.1.0, one rule per check, one result per fail/warn finding."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

from gate.interface import Level, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Level.FAIL: "error", Level.WARN: "warning", Level.INFO: "note"}
IMAGE_LEVEL_URI = "Dockerfile"
"""Where a finding about the image as a whole (its base image) is located: GitHub code scanning
rejects the whole file if one result has no location, and a FROM line is what fixes a base image."""
_RULES = {
    "vulnerabilities": "Known vulnerability at or above the environment's threshold",
    "secrets": "Secret stored in the image",
    "provenance": "Package not allowed for the environment",
    "base-image": "Image not built on an allowed base image",
}


def _tool_version() -> str:
    try:
        return version("airlock")
    except PackageNotFoundError:
        return "0"


def to_sarif(verdict: Verdict) -> str:
    rules = [{"id": rule, "name": rule, "shortDescription": {"text": text}} for rule, text in _RULES.items()]
    index = {rule: n for n, rule in enumerate(_RULES)}
    results = []
    for finding in verdict.findings:
        if finding.level is Level.INFO:
            continue
        result = {
            "ruleId": finding.check, "ruleIndex": index[finding.check], "level": _LEVEL[finding.level],
            "message": {"text": f"{finding.title}: {finding.reason}"},
            "properties": {k: v for k, v in (("package", finding.package), ("version", finding.version), ("id", finding.id),
                                              ("severity", finding.severity), ("layer", finding.layer)) if v},
        }
        uri = (finding.path or "").split(":")[0].lstrip("/") or IMAGE_LEVEL_URI
        result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
        results.append(result)
    run = {
        "tool": {"driver": {"name": "airlock-gate", "version": _tool_version(), "informationUri": "https://github.com/airlock/airlock",
                            "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": verdict.cause is None, "exitCode": verdict.outcome.exit_code,
                         **({"toolExecutionNotifications": [{"level": "error", "message": {"text": verdict.cause}}]} if verdict.cause else {})}],
        "properties": {"image": verdict.reference, "environment": verdict.environment, "decision": verdict.outcome.value,
                       "digest": verdict.digest, "discarded": list(verdict.discarded)},
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"
