"""Appending audit records without SQLAlchemy: the gate's writer (one record per run).

Importing SQLAlchemy and building its engines cost ~0.2 s of CPU on CI machines whose cores Trivy
is using at the same moment. This writes the row `log.append` would — same columns, same text
forms, same chain (a test reads it back through the ORM and verifies it) — with the standard
library for the embedded SQLite file, or psycopg for PostgreSQL. It writes only to a database
whose schema is current (`open_current` gives None otherwise: the caller has it migrated first).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror.audit.chain import canonical, clipped, record_hash
from mirror.store import SCHEMA_HEAD, SQLITE_PRAGMAS


class DirectLog:
    """An open connection to a current audit log: `append` records, `close` when done."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect

    def append(
        self, actor: str, action: str, subject: str, details: dict[str, Any] | str, project: str | None = None
    ) -> int:
        """Append one record in its own transaction (taking the head row's lock, as the service
        does); returns its sequence number. `details` may be given as its canonical text already."""
        details_text = details if isinstance(details, str) else canonical(details)
        actor, action, subject, project = clipped(actor, action, subject, project)
        at = datetime.now(UTC)
        if self.dialect == "sqlite":
            return _append_sqlite(self.connection, at, actor, action, subject, project, details_text)
        return _append_postgresql(self.connection, at, actor, action, subject, project, details_text)

    def close(self) -> None:
        self.connection.close()


def open_current(url: str) -> DirectLog | None:
    """A log on the database at `url` (a SQLAlchemy URL) if its schema is current, else None."""
    if url.startswith("sqlite:///"):
        return _open_sqlite(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        return _open_postgresql(url.replace("postgresql+psycopg://", "postgresql://", 1))
    return None


def _open_sqlite(path: Path) -> DirectLog | None:
    if not path.is_file():
        return None
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            connection.execute(pragma)
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        revision = None
    if revision != (SCHEMA_HEAD,):
        connection.close()
        return None
    return DirectLog(connection, "sqlite")


def _open_postgresql(url: str) -> DirectLog | None:
    import psycopg  # only for a PostgreSQL log

    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error:
        return None
    try:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.Error:
        revision = None
    if revision != (SCHEMA_HEAD,):
        connection.close()
        return None
    return DirectLog(connection, "postgresql")


def _append_sqlite(
    connection: sqlite3.Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    project: str | None,
    details_text: str,
) -> int:
    connection.execute("BEGIN IMMEDIATE")
    try:
        head_seq, head_hash = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        seq = head_seq + 1
        digest = record_hash(head_hash, seq, at, actor, action, subject, project, details_text)
        # `at` as SQLAlchemy stores UtcDateTime on SQLite: naive UTC, microseconds always shown.
        stored_at = at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        connection.execute(
            "INSERT INTO audit_records (seq, at, actor, action, subject, project, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, stored_at, actor, action, subject, project, details_text, head_hash, digest),
        )
        connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?", (seq, digest, head_seq))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return seq


def _append_postgresql(
    connection: Any, at: datetime, actor: str, action: str, subject: str, project: str | None, details_text: str
) -> int:
    with connection.transaction():
        head_seq, head_hash = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").fetchone()
        seq = head_seq + 1
        digest = record_hash(head_hash, seq, at, actor, action, subject, project, details_text)
        connection.execute(
            "INSERT INTO audit_records (seq, at, actor, action, subject, project, details, prev_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s, %s)",
            (seq, at, actor, action, subject, project, details_text, head_hash, digest),
        )
        connection.execute(
            "UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1 AND seq = %s", (seq, digest, head_seq)
        )
    return seq
