"""What Airlock tells, and to whom: no operator details to anonymous callers, no secrets in logs or
command lines, no existence probes of repositories that are not allowlisted, webhooks that a
receiver can tell from a replay, and allowlist names that cannot become paths elsewhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mirror.children.devpi import DevpiServer
from mirror.store.db import Database
from mirror.webhooks import WebhookSender, enqueue
from testkit.docker import Registry
from testkit.servers import AirlockProcess
from testkit.worlds import mint_token

CONTAINERS_YAML = """\
ecosystem: containers
environments: {{prod: {{}}}}
upstreams:
  local: {{url: {url}}}
images:
  - {{image: local/team/base, tags: ["1.*"], environments: [prod], reason: vetted base, owner: platform}}
"""


@pytest.fixture(scope="module")
def locked(tmp_path_factory, docker_engine):
    """Airlock with AIRLOCK_REQUIRE_TOKEN=true in front of an (empty) registry upstream."""
    tmp = tmp_path_factory.mktemp("locked-registry")
    upstream = Registry(tmp / "upstream").start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "containers.yaml").write_text(CONTAINERS_YAML.format(url=upstream.url))
    airlock = AirlockProcess(
        tmp / "airlock",
        {
            "AIRLOCK_DATA_DIR": str(tmp / "data"),
            "AIRLOCK_ALLOWLISTS": str(allowlists),
            "AIRLOCK_PYPI_UPSTREAM": "http://127.0.0.1:9/simple/",
            "AIRLOCK_REQUIRE_TOKEN": "true",
        },
    ).start()

    def token(role: str) -> str:
        return mint_token(f"sqlite:///{tmp / 'data' / 'airlock.db'}", role)

    yield airlock, token
    airlock.stop()
    upstream.stop()


def test_readiness_tells_anonymous_callers_only_whether_it_is_ready(locked):
    airlock, token = locked
    anonymous = httpx.get(f"{airlock.url}/readyz")
    assert anonymous.status_code == 200 and anonymous.json() == {"ready": True}
    operator = httpx.get(f"{airlock.url}/readyz", headers={"Authorization": f"Bearer {token('monitoring-process')}"})
    assert operator.json()["parts"]["devpi"]["pid"] > 0
    workspace = httpx.get(f"{airlock.url}/readyz", headers={"Authorization": f"Bearer {token('workspace')}"})
    assert workspace.json() == {"ready": True}


def test_tags_of_a_repository_not_allowlisted_are_refused_like_its_manifests(locked):
    airlock, token = locked
    auth = ("ws", token("workspace"))
    tags = httpx.get(f"{airlock.url}/v2/prod/local/team/secret-project/tags/list", auth=auth)
    manifest = httpx.get(f"{airlock.url}/v2/prod/local/team/secret-project/manifests/1.0", auth=auth)
    assert (tags.status_code, manifest.status_code) == (403, 403)
    assert tags.json()["errors"][0]["code"] == "DENIED"


def test_webhooks_are_signed_the_standard_webhooks_way(api_world):
    """Verified as a receiver following standardwebhooks.com would, written from the spec."""
    api_world.receiver.received.clear()
    body = {
        "ecosystem": "pypi",
        "package": "gamma",
        "environments": ["prod"],
        "project": "churn-model",
        "justification": "to check how webhooks are signed, nothing else",
    }
    assert api_world.call("POST", "/api/v1/exceptions", api_world.token("data-scientist"), body).status_code == 201
    deadline = time.monotonic() + 30
    while not api_world.receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    delivery = api_world.receiver.received[-1]
    headers = {key.lower(): value for key, value in delivery.headers.items()}
    message_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300  # a receiver refuses anything older: no replay
    signed = f"{message_id}.{timestamp}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(api_world.secret.encode(), signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")


def test_a_failing_webhook_is_logged_without_its_credentials_or_query(tmp_path, caplog):
    database = Database(f"sqlite:///{tmp_path / 'airlock.db'}")
    database.migrate()
    url = "http://hook-user:hook-password@127.0.0.1:9/notify?token=query-secret"
    with database.transaction() as session:
        enqueue(session, [url], "exception.requested", {"id": 1})
    caplog.set_level(logging.WARNING, logger="airlock.webhooks")
    with httpx.Client(timeout=2) as client:
        assert WebhookSender(database, "s").deliver_due(client) == 1
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "webhook exception.requested to http://***@127.0.0.1:9/notify?*** failed" in logged
    assert "hook-password" not in logged and "query-secret" not in logged
    database.dispose()


def test_devpis_root_password_is_private_and_never_on_a_command_line(tmp_path):
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # what `ps` shows every user while devpi-init runs
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"devpi-init" in cmdline:
                    seen.append(cmdline)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    devpi = DevpiServer(tmp_path / "data", "http://127.0.0.1:9/simple/", 60, 10)
    try:
        devpi._initialise()
    finally:
        stop.set()
        watcher.join()
    password = (tmp_path / "data" / "devpi-root-password").read_bytes().strip()
    assert seen, "devpi-init was never seen running"
    assert not any(password in cmdline for cmdline in seen)
    for name in ("devpi-root-password", "devpi-secret"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        (
            "conda.yaml",
            """\
            ecosystem: conda
            environments: {prod: {}}
            channels:
              ../../etc: {url: "https://conda.anaconda.org/conda-forge"}
            packages: []
            """,
            "invalid channel name '../../etc'",
        ),
        (
            "conda.yaml",
            """\
            ecosystem: conda
            environments: {prod: {}}
            channels:
              conda-forge: {url: "https://conda.anaconda.org/conda-forge", subdirs: ["../noarch"]}
            packages: []
            """,
            "'subdirs' must be a list like [noarch, linux-64]",
        ),
        (
            "containers.yaml",
            """\
            ecosystem: containers
            environments: {prod: {}}
            upstreams:
              "mar\\nhttp: {addr: 0.0.0.0:80}": {url: "https://mcr.microsoft.com"}
            images: []
            """,
            "invalid registry name",
        ),
        (
            "containers.yaml",
            """\
            ecosystem: containers
            environments: {prod: {}}
            upstreams:
              mar: {url: "https://mcr.microsoft.com\\nproxy: {remoteurl: http://evil}"}
            images: []
            """,
            "is not a plain http(s) URL",
        ),
    ],
    ids=["channel-path", "subdir-path", "registry-name-newline", "registry-url-newline"],
)
def test_upstream_names_that_would_become_paths_or_configuration_are_refused(tmp_path, file, text, message):
    folder = tmp_path / "allowlists"
    folder.mkdir()
    (folder / file).write_text(textwrap.dedent(text))
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "allowlist", "check", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout + result.stderr


def test_audit_verify_on_postgresql_reads_one_snapshot(tmp_path):
    """A record appended while verify reads is not reported as tampering."""
    from mirror.audit.log import append, verify_session
    from mirror.store.models import AuditHead
    from testkit.postgres import PostgresServer

    folder = Path(tempfile.mkdtemp(prefix="airlock-pg-"))  # postgres (its own user) must reach it
    folder.chmod(0o755)
    postgres = PostgresServer(folder).start()
    database = Database(postgres.url)
    try:
        database.migrate()
        with database.transaction() as session:
            append(session, "alice", "exception.requested", "exception 1", {"n": 1})
        with database.reading() as reader:
            head = reader.get(AuditHead, 1)  # verify has read the head (kept: the session holds it weakly)...
            with database.transaction() as session:  # ...when the service appends a record
                append(session, "bob", "exception.requested", "exception 2", {"n": 2}, at=datetime.now(UTC))
            result = verify_session(reader)
        assert result.intact and result.records == head.seq == 1, result
    finally:
        database.dispose()
        postgres.stop()
