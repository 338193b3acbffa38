"""Where a decision goes besides the terminal: the hash-chained audit log and the server.

Without `--server` the record is appended to the local audit log (the database in
AIRLOCK_DATA_DIR / AIRLOCK_DATABASE_URL, same chain `airlock audit verify` checks). With `--server`
the server records it, audits it and sends the webhooks; the local log gets it as well, so the
CI machine's own trail is complete either way.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
from typing import Any

from gate.errors import GateError
from gate.interface import Finding, Verdict
from mirror.audit.chain import canonical, spliced

_LAST_FINDINGS: tuple[tuple[Finding, ...], list[dict[str, str]], str] | None = None


def ci_identity(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Who ran the gate: the CI run (GitHub Actions / Azure Pipelines variables) or the local user."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true":
        run_url = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
        return {
            "system": "github-actions",
            "repository": env.get("GITHUB_REPOSITORY"),
            "workflow": env.get("GITHUB_WORKFLOW"),
            "run_id": env.get("GITHUB_RUN_ID"),
            "run_attempt": env.get("GITHUB_RUN_ATTEMPT"),
            "commit": env.get("GITHUB_SHA"),
            "ref": env.get("GITHUB_REF"),
            "actor": env.get("GITHUB_ACTOR"),
            "url": run_url,
        }
    if env.get("TF_BUILD", "").lower() == "true":
        return {
            "system": "azure-pipelines",
            "repository": env.get("BUILD_REPOSITORY_NAME"),
            "project": env.get("SYSTEM_TEAMPROJECT"),
            "pipeline": env.get("BUILD_DEFINITIONNAME"),
            "run_id": env.get("BUILD_BUILDID"),
            "run_number": env.get("BUILD_BUILDNUMBER"),
            "commit": env.get("BUILD_SOURCEVERSION"),
            "ref": env.get("BUILD_SOURCEBRANCH"),
            "actor": env.get("BUILD_REQUESTEDFOR"),
            "url": f"{env.get('SYSTEM_COLLECTIONURI', '')}{env.get('SYSTEM_TEAMPROJECT', '')}/_build/results?buildId={env.get('BUILD_BUILDID', '')}",
        }
    return {"system": "local", "user": getpass.getuser(), "host": socket.gethostname()}


def actor_of(ci: dict[str, Any]) -> str:
    if ci["system"] == "local":
        return f"gate:{ci['user']}@{ci['host']}"
    return f"gate:{ci['system']}:{ci.get('repository') or '?'}#{ci.get('run_id') or '?'}"


def _serialised(findings: tuple[Finding, ...]) -> tuple[tuple[Finding, ...], list[dict[str, str]], str]:
    """The findings as dicts and as canonical JSON, made once per verdict (kept for the same tuple,
    which a `replace`d verdict shares): the audit record, the server's copy and the JSON report
    all carry every finding, and serialising 2,000 of them costs ~10 ms of a CI step that waits."""
    global _LAST_FINDINGS
    if _LAST_FINDINGS is None or _LAST_FINDINGS[0] is not findings:
        dicts = [f.as_dict() for f in findings]
        _LAST_FINDINGS = (findings, dicts, canonical(dicts))
    return _LAST_FINDINGS


def finding_dicts(findings: tuple[Finding, ...]) -> list[dict[str, str]]:
    return _serialised(findings)[1]


def findings_text(findings: tuple[Finding, ...]) -> str:
    return _serialised(findings)[2]


def decision_body(verdict: Verdict, ci: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`{image, digest, environment, decision, findings, ci}`: the body of `POST /api/v1/gate/decisions` (README)."""
    return {
        "image": verdict.reference,
        "digest": verdict.digest,
        "environment": verdict.environment,
        "decision": verdict.outcome.value,
        "cause": verdict.cause,
        "discarded": list(verdict.discarded),
        "findings": finding_dicts(verdict.findings),
        "ci": ci,
        **extra,
    }


class AuditSink:
    """The local hash-chained audit log (the database in AIRLOCK_DATA_DIR / AIRLOCK_DATABASE_URL).

    `open` may run early, while Trivy scans; `append` opens it if that did not happen, so a record is
    written on every path. Written with `mirror.audit.direct` (the standard library's sqlite3, or
    psycopg for PostgreSQL); a database that is new or has an old schema is migrated first by
    `python -m mirror.store.migrate` in a child process, so the gate never loads the server's
    settings, SQLAlchemy or its migrations.
    """

    def __init__(self) -> None:
        self._log = None

    def open(self) -> None:
        if self._log is not None:
            return
        from mirror.audit.direct import open_current
        from mirror.store.location import database_url

        url = database_url()
        self._log = open_current(url)
        if self._log is None:
            migrated = subprocess.run(
                [sys.executable, "-m", "mirror.store.migrate"], capture_output=True, text=True, timeout=300
            )
            if migrated.returncode != 0:
                raise GateError(f"cannot write the audit log: {migrated.stderr.strip() or 'migration failed'}")
            self._log = open_current(url)
            if self._log is None:
                raise GateError(f"cannot write the audit log: the database {_masked(url)} has no current schema")

    def append(self, body: dict[str, Any], actor: str, findings: str | None = None) -> int:
        """Append one `gate.decision` record; returns its sequence number. `findings`: the body's
        findings as `findings_text` made them, spliced in rather than serialised again."""
        self.open()
        details = spliced(body, "findings", findings) if findings is not None else body
        try:
            return self._log.append(actor, "gate.decision", body["image"], details)
        finally:
            self._log.close()
            self._log = None


def _masked(url: str) -> str:
    head, at, host = url.rpartition("@")
    return f"{head.partition(':')[0]}:***@{host}" if at else url
