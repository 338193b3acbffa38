"""Appending one record to the embedded SQLite audit log without SQLAlchemy.

The gate writes one record per run. Importing SQLAlchemy and building its engines to do that cost
~0.2 s of CPU on CI machines whose cores Trivy is using at the same moment. When the database is the
embedded SQLite file (`mirror.store.location`) and its schema is current, this writes the row
`log.append` would — same columns, same text forms, same chain (a test reads it back through the
ORM and verifies it) — with the standard library. Otherwise `open_current` gives None and the caller
uses `mirror.store.db.Database`, which also creates and migrates a new database.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mirror.audit.chain import canonical, clipped, record_hash
from mirror.store import SCHEMA_HEAD, SQLITE_PRAGMAS

_INSERT = ("INSERT INTO audit_records (seq, at, actor, action, subject, project, details, prev_hash, hash) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def open_current(path: Path) -> sqlite3.Connection | None:
    """A connection to the database file at `path` if its schema is current, else None."""
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
    return connection


def append(connection: sqlite3.Connection, actor: str, action: str, subject: str, details: dict[str, Any] | str,
           project: str | None = None) -> int:
    """Append one record in its own transaction (the write lock is taken at BEGIN, as the service
    takes it); returns its sequence number. `details` may be given as its canonical text already."""
    details_text = details if isinstance(details, str) else canonical(details)
    actor, action, subject, project = clipped(actor, action, subject, project)
    at = datetime.now(timezone.utc)
    connection.execute("BEGIN IMMEDIATE")
    try:
        head_seq, head_hash = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        seq = head_seq + 1
        digest = record_hash(head_hash, seq, at, actor, action, subject, project, details_text)
        # `at` as SQLAlchemy stores UtcDateTime on SQLite: naive UTC, microseconds always shown.
        stored_at = at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        connection.execute(_INSERT, (seq, stored_at, actor, action, subject, project, details_text, head_hash, digest))
        connection.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?", (seq, digest, head_seq))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return seq
