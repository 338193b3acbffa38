"""Airlock's state: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema managed by Alembic."""

SCHEMA_HEAD = "0003"
"""The newest migration's revision (a test keeps it equal to Alembic's head): a database already
there is not handed to Alembic, whose import and run cost short-lived commands like the gate ~0.3 s.
Kept here, away from SQLAlchemy, for `mirror.audit.direct`."""

SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=30000")
"""Every SQLite connection's settings: WAL (readers never wait for the writer), a commit is on disk
when it returns, and a writer waits up to 30 s for another's lock instead of failing."""
