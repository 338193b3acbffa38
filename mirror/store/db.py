"""Engine and sessions; migrations run at startup (`upgrade head`) so a new version needs no step."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mirror.store import SCHEMA_HEAD, SQLITE_PRAGMAS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x41_69_72_6C_6F_63_6B  # "Airlock": the PostgreSQL advisory lock migrations take


def _sqlite_pragmas(engine: Engine, immediate: bool) -> None:
    """SQLite in WAL mode (readers never wait for the writer). For the write engine, take the
    write lock at BEGIN, so two writers queue instead of failing with "database is locked"
    half-way through a transaction (the SQLAlchemy-documented recipe); reads stay deferred."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class DatabaseUnavailable(Exception):
    """The configured database cannot be reached or used; the message says which and why."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_pragmas(self.engine, immediate=True)
            self.read_engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_pragmas(self.read_engine, immediate=False)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # A snapshot read sees one state of the database throughout: SQLite's deferred BEGIN gives
        # that; PostgreSQL's READ COMMITTED would give each statement its own, so that `audit
        # verify` read the head, then records appended after it, and reported tampering.
        snapshot_engine = (
            self.read_engine
            if url.startswith("sqlite")
            else self.read_engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self._read_sessions = sessionmaker(snapshot_engine, expire_on_commit=False)
        # Reads whose statements each stand alone need no transaction. On PostgreSQL its BEGIN and
        # ROLLBACK are two more round trips, which made the API's list 1.7 ms instead of 1.0 ms;
        # the option engine shares the pool and sets psycopg's client-side autocommit flag.
        self._statement_sessions = (
            self._read_sessions
            if url.startswith("sqlite")
            else sessionmaker(self.read_engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
        )
        # SQLite has one writer at a time; when a second one finds the lock taken, sqlite3's busy
        # handler sleeps in steps of up to 100 ms. Queueing the process's writers on a lock
        # instead hands the database over at once (other processes still use the busy handler).
        self._write_lock = threading.RLock() if url.startswith("sqlite") else nullcontext()

    def migrate(self) -> None:
        """Bring the schema to the newest revision; raise DatabaseUnavailable (a sentence, no
        password) when the database cannot be reached or used."""
        try:
            self._migrate()
        except (SQLAlchemyError, OSError, TypeError, ValueError) as exc:
            shown = make_url(self.url).render_as_string(hide_password=True)
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
            raise DatabaseUnavailable(
                f"cannot use the database {shown}: {detail} "
                "(check AIRLOCK_DATABASE_URL and that the server is up; PostgreSQL databases must be UTF8)"
            ) from None

    def _migrate(self) -> None:
        if self.schema_revision() == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas started together (a Kubernetes rollout) all find the schema old: one
                # migrates under this lock (released when the transaction ends), the others wait for
                # it and then find nothing left to do. Without it, two ran CREATE TABLE at once.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                revision = connection.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar()
                if (
                    revision
                    and connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
                ):
                    return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except DBAPIError:
                return None  # a new database: no alembic_version table yet

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed whole, or rolled back whole."""
        with self._write_lock, self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self, snapshot: bool = True) -> Iterator[Session]:
        """A read-only unit that sees one snapshot; never takes SQLite's write lock. With `snapshot=False` every statement
        sees the newest committed data on its own (no transaction): for reads that need no
        consistency across statements and no server-side cursor (`yield_per`)."""
        with (self._read_sessions if snapshot else self._statement_sessions)() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
