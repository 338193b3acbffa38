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
import sqlite3
from typing import Any

from gate.interface import Finding, Verdict
from mirror.audit.chain import canonical, spliced

_LAST_FINDINGS: tuple[tuple[Finding, ...], list[dict[str, str]], str] | None = None


def ci_identity(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Who ran the gate: the CI run (GitHub Actions / Azure Pipelines variables) or the local user."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true":
        run_url = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
        return {"system": "github-actions", "repository": env.get("GITHUB_REPOSITORY"), "workflow": env.get("GITHUB_WORKFLOW"),
                "run_id": env.get("GITHUB_RUN_ID"), "run_attempt": env.get("GITHUB_RUN_ATTEMPT"), "commit": env.get("GITHUB_SHA"),
                "ref": env.get("GITHUB_REF"), "actor": env.get("GITHUB_ACTOR"), "url": run_url}
    if env.get("TF_BUILD", "").lower() == "true":
        return {"system": "azure-pipelines", "repository": env.get("BUILD_REPOSITORY_NAME"), "project": env.get("SYSTEM_TEAMPROJECT"),
                "pipeline": env.get("BUILD_DEFINITIONNAME"), "run_id": env.get("BUILD_BUILDID"), "run_number": env.get("BUILD_BUILDNUMBER"),
                "commit": env.get("BUILD_SOURCEVERSION"), "ref": env.get("BUILD_SOURCEBRANCH"), "actor": env.get("BUILD_REQUESTEDFOR"),
                "url": f"{env.get('SYSTEM_COLLECTIONURI', '')}{env.get('SYSTEM_TEAMPROJECT', '')}/_build/results?buildId={env.get('BUILD_BUILDID', '')}"}
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
    """`{image, digest, environment, decision, findings, ci}` as DESIGN.md's gate contract says."""
    return {"image": verdict.reference, "digest": verdict.digest, "environment": verdict.environment,
            "decision": verdict.outcome.value, "cause": verdict.cause, "discarded": list(verdict.discarded),
            "findings": finding_dicts(verdict.findings),
            "ci": ci, **extra}


class AuditSink:
    """The local hash-chained audit log (the database in AIRLOCK_DATA_DIR / AIRLOCK_DATABASE_URL).

    `open` may run early, while Trivy scans; `append` opens it if that did not happen, so a record is
    written on every path. The embedded SQLite file, once its schema exists, is written with the
    standard library (`mirror.audit.sqlite_append`); any other database, or a new one to migrate,
    through SQLAlchemy as the service writes it.
    """

    def __init__(self) -> None:
        self._embedded: sqlite3.Connection | None = None
        self._database = None

    def open(self) -> None:
        if self._embedded is not None or self._database is not None:
            return
        from mirror.audit.sqlite_append import open_current
        from mirror.store.location import embedded_sqlite_file

        path = embedded_sqlite_file()
        self._embedded = open_current(path) if path is not None else None
        if self._embedded is not None:
            return
        from mirror.settings import load_settings
        from mirror.store.db import Database

        database = Database(load_settings().resolved_database_url)
        database.migrate()
        self._database = database

    def append(self, body: dict[str, Any], actor: str, findings: str | None = None) -> int:
        """Append one `gate.decision` record; returns its sequence number. `findings`: the body's
        findings as `findings_text` made them, spliced in rather than serialised again."""
        self.open()
        if self._embedded is not None:
            from mirror.audit.sqlite_append import append as append_embedded

            details = spliced(body, "findings", findings) if findings is not None else body
            try:
                return append_embedded(self._embedded, actor, "gate.decision", body["image"], details)
            finally:
                self._embedded.close()
                self._embedded = None
        from mirror.audit.log import append

        try:
            with self._database.transaction() as session:
                return append(session, actor, "gate.decision", body["image"], body).seq
        finally:
            self._database.dispose()
            self._database = None
