"""The audit log is tamper-evident: any edit, deletion, insertion or reordering is named by
`airlock audit verify`; a server killed with SIGKILL mid-decision loses no committed record."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from mirror.audit.log import append, canonical, record_hash
from mirror.store.db import Database
from mirror.store.models import AuditRecord, ExceptionRequest


def audit_verify(url: str, *anchors: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mirror", "audit", "verify", *(f"--anchor={anchor}" for anchor in anchors)]
    return subprocess.run(
        command, capture_output=True, text=True, env={"AIRLOCK_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    )


def verify(url: str, *anchors: str) -> tuple[int, str]:
    """Exit code and the verdict line (the first line of output)."""
    result = audit_verify(url, *anchors)
    return result.returncode, (result.stdout + result.stderr).strip().splitlines()[0]


def anchor_of(url: str) -> str:
    """The anchor an intact log's verify prints: `anchor: SEQ:HASH (…)`."""
    [line] = [line for line in audit_verify(url).stdout.splitlines() if line.startswith("anchor: ")]
    return line.split()[1]


@pytest.fixture
def chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    database = Database(url)
    database.migrate()
    with database.transaction() as session:
        for number in range(1, 6):
            append(
                session,
                f"user{number}",
                "exception.requested",
                f"exception {number}",
                {"n": number},
                project="churn-model",
            )
    yield url, database
    database.dispose()


def raw(database: Database, sql: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(sql))


def test_record_hash_is_the_hash_of_the_whole_record_canonical():
    # The formula every record written so far was chained with: a faster spelling must not change it.
    at = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    details = {"zeta": [1, 2.5, None], "ä": {"b": True, "a": "ünïcode"}}
    record = {
        "seq": 7,
        "at": at.astimezone(UTC).isoformat(),
        "actor": "alice",
        "action": "exception.approved",
        "subject": "exception 3",
        "project": None,
        "details": details,
    }
    expected = hashlib.sha256(("f" * 64 + canonical(record)).encode()).hexdigest()
    arguments = ("f" * 64, 7, at, "alice", "exception.approved", "exception 3", None)
    assert record_hash(*arguments, details) == expected
    assert record_hash(*arguments, canonical(details)) == expected


def test_an_untouched_chain_verifies(chain):
    assert verify(chain[0]) == (0, "audit log intact: 5 records, hash chain verified")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            "UPDATE audit_records SET actor = 'mallory' WHERE seq = 3",
            "audit log TAMPERED at record 3: record 3 was altered after it was written (its hash does not match its content)",
        ),
        (
            "DELETE FROM audit_records WHERE seq = 2",
            "audit log TAMPERED at record 2: record 2 is missing (found 3 in its place): records were deleted or inserted",
        ),
        (
            "DELETE FROM audit_records WHERE seq = 5",
            "audit log TAMPERED at record 5: the chain ends at record 4 but 5 were written: the newest records were deleted",
        ),
        (
            "UPDATE audit_records SET seq = 100 WHERE seq = 2; UPDATE audit_records SET seq = 2 WHERE seq = 3; "
            "UPDATE audit_records SET seq = 3 WHERE seq = 100",
            "audit log TAMPERED at record 2: record 2 does not link to record 1: records were reordered, inserted or edited",
        ),
        (
            "UPDATE audit_records SET seq = seq + 100 WHERE seq >= 4; UPDATE audit_records SET seq = seq - 99 WHERE seq >= 100; "
            "INSERT INTO audit_records (seq, at, actor, action, subject, project, details, prev_hash, hash) "
            "SELECT 4, at, 'mallory', action, subject, project, details, hash, hash FROM audit_records WHERE seq = 3",
            "audit log TAMPERED at record 4: record 4 was altered after it was written (its hash does not match its content)",
        ),
    ],
    ids=["edit", "delete", "truncate", "reorder", "insert"],
)
def test_tampering_is_named(chain, tamper, message):
    url, database = chain
    for statement in tamper.split("; "):
        raw(database, statement)
    assert verify(url) == (1, message)


def _rewrite_from(database: Database, first: int, actor: str, last: int | None = None) -> None:
    """What someone who can write the database can do: change record `first` and re-chain every
    record after it (and the head), optionally cutting the log after `last`."""
    with database.transaction() as session:
        records = session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars().all()
        prev = records[first - 2].hash if first > 1 else "0" * 64
        for record in records[first - 1 :]:
            if last is not None and record.seq > last:
                session.delete(record)
                continue
            if record.seq == first:
                record.actor = actor
            record.prev_hash = prev
            record.hash = prev = record_hash(
                prev, record.seq, record.at, record.actor, record.action, record.subject, record.project, record.details
            )
        session.flush()
        session.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
            {"seq": last or records[-1].seq, "hash": prev},
        )


def test_an_anchor_kept_outside_catches_a_rewritten_or_cut_log(chain, tmp_path):
    url, database = chain
    assert verify(url, anchor := anchor_of(url)) == (
        0,
        "audit log intact: 5 records, hash chain verified, 1 anchor(s) matched",
    )
    assert anchor.startswith("5:")
    _rewrite_from(database, 3, "mallory")
    # A re-chained log is consistent: only the anchor shows that record 5 is no longer the one written.
    assert verify(url) == (0, "audit log intact: 5 records, hash chain verified")
    code, message = verify(url, anchor)
    assert code == 1 and message.startswith("audit log TAMPERED at record 5: record 5 is not the one anchored")
    _rewrite_from(database, 3, "user3", last=4)
    assert verify(url, anchor) == (
        1,
        "audit log TAMPERED at record 5: the log ends at record 4, but record 5 was anchored: "
        "the newest records were deleted",
    )
    bad = audit_verify(url, "5:abc")
    assert bad.returncode == 2 and "'5:abc' is not SEQ:HASH" in bad.stderr


def test_sigkill_during_decisions_loses_nothing_committed(tmp_path):
    from testkit.worlds import start_pypi_world

    url = f"sqlite:///{tmp_path / 'airlock.db'}"
    world = start_pypi_world(tmp_path / "world", {"AIRLOCK_DATABASE_URL": url})
    database = Database(url)
    try:
        from mirror.auth.tokens import create_token

        with database.transaction() as session:
            alice = create_token(session, "alice", "data-scientist", ["churn-model"], None)[0]
            gina = create_token(session, "gina", "data-governance", [], None)[0]
        body = {
            "ecosystem": "pypi",
            "package": "kappa",
            "versions": ">=1.0",
            "environments": ["prod"],
            "project": "churn-model",
            "justification": "load test of decisions under a crash",
        }
        ids = [
            httpx.post(
                f"{world.url}/api/v1/exceptions", json=body, headers={"Authorization": f"Bearer {alice}"}
            ).json()["id"]
            for _ in range(40)
        ]

        def approve_all():
            with httpx.Client(headers={"Authorization": f"Bearer {gina}"}, timeout=5) as client:
                for request_id in ids:
                    try:
                        client.post(f"{world.url}/api/v1/exceptions/{request_id}/approve", json={"comment": "ok"})
                    except httpx.HTTPError:
                        return

        worker = threading.Thread(target=approve_all)
        worker.start()
        time.sleep(0.4)
        os.kill(world.airlock.process.pid, signal.SIGKILL)
        worker.join()
        world.airlock.process.wait(10)

        with database.reading() as session:
            statuses = dict(session.execute(select(ExceptionRequest.id, ExceptionRequest.status)).all())
            approvals = {
                int(r.subject.split()[1])
                for r in session.execute(
                    select(AuditRecord).where(AuditRecord.action == "exception.approved")
                ).scalars()
            }
        approved = {i for i, status in statuses.items() if status == "approved"}
        assert set(statuses.values()) <= {"pending", "approved"}  # no half state
        assert approved == approvals  # every committed decision has its record, and no record lacks one
        code, message = verify(url)
        assert code == 0 and message.startswith("audit log intact:"), message

        world.airlock.start()  # the same data directory: it comes back and goes on
        pending = [i for i, status in statuses.items() if status == "pending"]
        if pending:
            again = httpx.post(
                f"{world.url}/api/v1/exceptions/{pending[0]}/approve",
                json={"comment": "after restart"},
                headers={"Authorization": f"Bearer {gina}"},
            )
            assert again.status_code == 200
        assert verify(url)[0] == 0
    finally:
        database.dispose()
        world.stop()


def test_the_gates_direct_writer_writes_what_the_service_writes(chain, tmp_path):
    """`direct` (the gate's writer, no SQLAlchemy) and `log.append` extend one chain, and
    their rows read back alike through the ORM."""
    from mirror.audit import direct

    url, database = chain
    log = direct.open_current(f"sqlite:///{tmp_path / 'audit.db'}")
    assert log is not None
    details = {"image": "app:1", "findings": [{"check": "secrets", "reason": "ünïcode \u2028 line"}], "n": 1.5}
    assert log.append("gate:ci", "gate.decision", "app:1", details) == 6
    log.close()
    with database.transaction() as session:
        append(session, "user7", "exception.requested", "exception 7", {"n": 7})
    assert verify(url) == (0, "audit log intact: 7 records, hash chain verified")
    with database.reading() as session:
        written = session.get(AuditRecord, 6)
        assert (written.actor, written.action, written.subject, written.project, written.details) == (
            "gate:ci",
            "gate.decision",
            "app:1",
            None,
            details,
        )
        assert written.at.tzinfo is not None and abs((datetime.now(UTC) - written.at).total_seconds()) < 60
    with database.engine.connect() as raw_connection:
        stored = (
            raw_connection.execute(text("SELECT at FROM audit_records WHERE seq IN (5, 6) ORDER BY seq"))
            .scalars()
            .all()
        )
    assert len(stored[0]) == len(stored[1]) and stored[1][10] == " "  # the text form SQLAlchemy writes


def test_a_gate_record_with_spliced_findings_is_the_record_of_its_body(chain, tmp_path):
    """The gate hands the appender its body as canonical text, findings spliced in: the chain
    verifies, and the record reads back as the body itself."""
    from mirror.audit import direct
    from mirror.audit.chain import spliced

    url, database = chain
    findings = [{"check": "vulnerabilities", "level": "info", "title": f"ünïcode {n}"} for n in range(3)]
    body = {"image": "app:2", "findings": findings, "decision": "pass", "ci": {"system": "local"}}
    log = direct.open_current(f"sqlite:///{tmp_path / 'audit.db'}")
    assert log.append("gate:ci", "gate.decision", "app:2", spliced(body, "findings", canonical(findings))) == 6
    log.close()
    assert verify(url) == (0, "audit log intact: 6 records, hash chain verified")
    with database.reading() as session:
        assert session.get(AuditRecord, 6).details == body


def test_the_gates_direct_writer_leaves_new_and_old_databases_to_the_migrator(tmp_path):
    from mirror.audit import direct

    assert direct.open_current(f"sqlite:///{tmp_path / 'absent.db'}") is None
    old = tmp_path / "old.db"
    database = Database(f"sqlite:///{old}")
    database.migrate()
    raw(database, "UPDATE alembic_version SET version_num = '0000'")
    database.dispose()
    assert direct.open_current(f"sqlite:///{old}") is None
    (tmp_path / "not-a-database.db").write_text("hello")
    assert direct.open_current(f"sqlite:///{tmp_path / 'not-a-database.db'}") is None


def test_the_gates_direct_writer_extends_a_postgresql_log(tmp_path):
    """With AIRLOCK_DATABASE_URL naming PostgreSQL, the gate writes with psycopg, not SQLAlchemy:
    the same chain, verified by the service's own reader."""
    import tempfile

    from mirror.audit import direct
    from testkit.postgres import PostgresServer

    folder = Path(tempfile.mkdtemp(prefix="airlock-pg-"))
    folder.chmod(0o755)
    server = PostgresServer(folder).start()
    try:
        assert direct.open_current(server.url) is None  # no schema yet: the migrator's job
        database = Database(server.url)
        database.migrate()
        with database.transaction() as session:
            append(session, "user1", "exception.requested", "exception 1", {"n": 1})
        log = direct.open_current(server.url)
        assert log is not None and log.dialect == "postgresql"
        assert log.append("gate:ci", "gate.decision", "app:3", {"image": "app:3", "findings": []}) == 2
        log.close()
        with database.transaction() as session:
            append(session, "user3", "exception.requested", "exception 3", {"n": 3})
        assert verify(server.url) == (0, "audit log intact: 3 records, hash chain verified")
        database.dispose()
    finally:
        server.stop()
