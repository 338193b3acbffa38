"""The worlds the end-to-end tests run in: an upstream index, Airlock in front of it, real clients."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from testkit.pypi import Release, Upstream
from testkit.servers import AirlockProcess, PypiIndexServer, StaticServer

if TYPE_CHECKING:
    from testkit.postgres import PostgresServer
    from testkit.receiver import WebhookReceiver

BIN = Path(sys.executable).parent
UPSTREAM_INDEX_DELAY = 45.0
"""Seconds the test upstream's project list takes: longer than devpi's upstream timeout."""


def upstream_releases() -> list[Release]:
    """Several projects, versions, a pre-release, a yank, a local version, odd spellings, traps."""
    return [
        Release("alpha", "1.0"),
        Release("alpha", "1.1"),
        Release("alpha", "1.1", kind="sdist"),
        Release("alpha", "2.0", payload=b"alpha 2.0 is not allowed in prod"),
        Release("alpha", "2.1rc1"),
        Release("alpha", "notaversion"),  # unparseable: dropped from every page
        Release("evil", "9.9", listed_under="alpha", payload=b"evil file on alpha's page"),
        Release("beta", "1.0", requires=("alpha>=1.0",)),
        Release("gamma", "1.0", requires=("delta>=1.0",)),
        Release("delta", "1.0", payload=b"delta is not allowlisted"),
        # A file named like an allowed alpha release, published on delta's page.
        Release("alpha", "1.0.1", listed_under="delta", payload=b"MALICIOUS alpha on delta's page"),
        Release("Zeta.Pkg", "1.0", kind="sdist"),
        Release("Zeta.Pkg", "1.0", dist_name="ZETA_pkg"),
        Release("epsilon", "1.0", licence="Copyright © 2008 “Ünïcode” Authors: real METADATA is not ASCII"),
        Release("epsilon", "1.1", yanked="broken build"),
        Release("torchish", "2.0.0+cpu"),
        Release("oldpy", "0.9"),
        Release("oldpy", "1.0", requires_python="<3"),
        Release("sdistonly", "1.0", kind="sdist"),
        Release("uncached", "1.0"),
        # Not allowlisted anywhere: each exception test asks for its own, so tests stay independent.
        *(Release(name, "1.0") for name in ("kappa", "mu", "nu", "xi", "omicron", "rho")),
        Release("sigma", "1.0", requires=("tau>=1.0",)),
        Release("tau", "1.2", requires=("upsilon",)),
        Release("upsilon", "2.0"),
    ]


ALLOWLIST = """\
ecosystem: pypi
environments: {prod: {}, preprod: {extends: prod}}
deny:
  - {name: alpha, versions: "==1.0", reason: known bad build}
packages:
  - {name: alpha, versions: ">=1.0,<2", environments: [prod], reason: core, owner: ml}
  - {name: alpha, prereleases: true, environments: [preprod], reason: try new majors, owner: ml}
  - {name: beta, environments: [prod], reason: uses alpha, owner: ml}
  - {name: gamma, environments: [prod], reason: needs delta which is not listed, owner: ml}
  - {name: ZETA_pkg, environments: [prod], reason: odd spelling, owner: ml}
  - {name: epsilon, environments: [prod], reason: has a yanked release, owner: ml}
  - {name: torchish, versions: "==2.0.0", environments: [prod], reason: local version, owner: ml}
  - {name: oldpy, environments: [prod], reason: requires-python, owner: ml}
  - {name: sdistonly, environments: [prod], reason: sdist only, owner: ml}
  - {name: uncached, environments: [prod], reason: never fetched before upstream goes down, owner: ml}
"""


@dataclass
class PypiWorld:
    upstream: Upstream
    upstream_server: PypiIndexServer
    airlock: AirlockProcess
    allowlists: Path
    tmp: Path

    @property
    def url(self) -> str:
        return self.airlock.url

    def index(self, env: str = "prod") -> str:
        return f"{self.url}/pypi/{env}/simple/"

    def devpi_url(self) -> str:
        return httpx.get(f"{self.url}/readyz").json()["parts"]["devpi"]["url"]

    def write_allowlist(self, text: str) -> None:
        path = self.allowlists / "pypi.yaml"
        path.write_text(textwrap.dedent(text))
        stamp = time.time_ns() + 1_000_000  # a distinct mtime even within one filesystem tick
        os.utime(path, ns=(stamp, stamp))

    def stop(self) -> None:
        self.airlock.stop()
        self.upstream_server.stop()


def start_pypi_world(tmp: Path, extra_env: dict[str, str] | None = None) -> PypiWorld:
    # As the public PyPI (the one these machines reach): JSON pages with PEP 700 fields, no PEP 658
    # files, and a project list far too slow to load first (devpi must ask for the project itself).
    upstream = Upstream(tmp / "upstream", index_delay=UPSTREAM_INDEX_DELAY)
    upstream.add(*(dataclasses.replace(release, metadata=False) for release in upstream_releases()))
    upstream.publish()
    server = PypiIndexServer(upstream.root).start()
    upstream.url = f"{server.url}/simple/"
    work = tmp / "airlock"
    allowlists = work / "allowlists"
    allowlists.mkdir(parents=True)
    (allowlists / "pypi.yaml").write_text(ALLOWLIST)
    # Metadata only where the upstream serves it (tests/test_pypi_upstreams.py covers the default, extract)
    env = {
        "AIRLOCK_PYPI_UPSTREAM": upstream.url,
        "AIRLOCK_DATA_DIR": str(work / "data"),
        "AIRLOCK_ALLOWLISTS": str(allowlists),
        "AIRLOCK_PYPI_METADATA": "upstream",
        **(extra_env or {}),
    }
    try:
        airlock = AirlockProcess(work, env).start()
    except BaseException:
        server.stop()  # a failed start must not leave the upstream running
        raise
    return PypiWorld(upstream, server, airlock, allowlists, tmp)


ADVISORY = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "aliases": ["CVE-2026-0001"],
    "summary": "alpha before 1.1 runs untrusted pickles",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "alpha"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}],
        }
    ],
    "database_specific": {"severity": "HIGH"},
}


@dataclass
class ApiWorld:
    """Airlock with a database (SQLite or PostgreSQL), webhooks, advisories, and tokens per role."""

    pypi: PypiWorld
    database_url: str
    receiver: WebhookReceiver
    secret: str
    tokens: dict[str, str]
    postgres: PostgresServer | None = None

    @property
    def url(self) -> str:
        return self.pypi.url

    def token(self, role: str, user: str | None = None, projects: tuple[str, ...] = ("churn-model",)) -> str:
        key = f"{role}:{user}:{','.join(projects)}"
        if key not in self.tokens:
            self.tokens[key] = mint_token(self.database_url, role, user, projects)
        return self.tokens[key]

    def call(self, method: str, path: str, token: str | None, body: dict | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def stop(self) -> None:
        self.pypi.stop()
        self.receiver.stop()
        if self.postgres is not None:
            self.postgres.stop()


def mint_token(
    database_url: str, role: str, user: str | None = None, projects: tuple[str, ...] = ("churn-model",)
) -> str:
    """A token as `airlock token create` issues it, written straight into the service's database."""
    from mirror.auth.tokens import create_token
    from mirror.store.db import Database

    database = Database(database_url)
    with database.transaction() as session:
        value = create_token(session, user or f"{role}-user", role, list(projects), None, actor="test")[0]
    database.dispose()
    return value


def last_audit_seq(database_url: str) -> int:
    """The newest audit record's number, read straight from the service's database."""
    from sqlalchemy import func, select

    from mirror.store.db import Database
    from mirror.store.models import AuditRecord

    database = Database(database_url)
    try:
        with database.reading() as session:
            return session.execute(select(func.max(AuditRecord.seq))).scalar() or 0
    finally:
        database.dispose()


def start_api_world(tmp: Path, backend: str) -> ApiWorld:
    import json as _json
    import tempfile

    from testkit.postgres import PostgresServer
    from testkit.receiver import WebhookReceiver

    postgres = None
    if backend == "postgresql":
        folder = Path(tempfile.mkdtemp(prefix="airlock-pg-"))  # postgres must be able to reach it
        folder.chmod(0o755)
        postgres = PostgresServer(folder).start()
        database_url = postgres.url
    else:
        database_url = f"sqlite:///{tmp / 'airlock.db'}"
    advisories = tmp / "advisories"
    advisories.mkdir()
    (advisories / "GHSA-aaaa-bbbb-cccc.json").write_text(_json.dumps(ADVISORY))
    receiver = WebhookReceiver().start()
    secret = "test-webhook-secret"
    pypi = start_pypi_world(
        tmp,
        {
            "AIRLOCK_DATABASE_URL": database_url,
            "AIRLOCK_WEBHOOK_URLS": receiver.url,
            "AIRLOCK_WEBHOOK_SECRET": secret,
            "AIRLOCK_ADVISORIES": str(advisories),
            "AIRLOCK_MAX_EXCEPTION_DAYS": "120",
            "AIRLOCK_DENIAL_SUMMARY_SECONDS": "5",  # summaries of refused junk within a test's patience
        },
    )
    return ApiWorld(pypi, database_url, receiver, secret, {}, postgres)


def quarantined(response: httpx.Response) -> bool:
    """PEP 792: the page exists, lists nothing, and says why (how Airlock refuses a project)."""
    if response.status_code != 200:
        return False
    if response.headers.get("content-type", "").startswith("application/vnd.pypi.simple.v1+json"):
        return response.json().get("project-status", {}).get("status") == "quarantined" and not response.json()["files"]
    return '<meta name="pypi:project-status" content="quarantined">' in response.text and "<a " not in response.text


def client_env(tmp: Path) -> dict[str, str]:
    """pip and uv isolated from this machine's configuration (extra indexes, find-links, caps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_")) and k not in ("VIRTUAL_ENV",)}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def fresh_venv(path: Path) -> Path:
    """A virtual environment with no packages; clients install into it with --python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip(args: list[str], tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], env=client_env(tmp), capture_output=True, text=True, timeout=timeout
    )


def uv(args: list[str], tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "uv"), *args], env=client_env(tmp), capture_output=True, text=True, timeout=timeout
    )


def installed(python: Path) -> dict[str, str]:
    """`{normalised name: version}` of what is installed in the venv, read with importlib.metadata."""
    code = (
        "import importlib.metadata as m, json, re; "
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in m.distributions()}))"
    )
    # cwd outside the repository: `-c` puts the working directory (and its *.egg-info) on sys.path
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd=python.parent)
    import json

    return json.loads(result.stdout)


def start_conda_airlock(
    tmp: Path, conda_yaml: str, packages
) -> tuple[AirlockProcess, StaticServer, dict[str, str], object]:
    """An upstream conda channel of `packages` (served as a CDN does, connections kept open) and
    `airlock up` with `conda_yaml` (its `{url}` filled with the channel's); the channel is not synced.
    Returns the service, the upstream's server, the service's settings and the upstream's folder."""
    from testkit.conda import CondaChannelDir

    upstream = CondaChannelDir(tmp / "upstream")
    upstream.add(*packages)
    upstream.publish()
    server = StaticServer(upstream.root, keep_alive=True).start()
    work = tmp / "airlock"
    (work / "allowlists").mkdir(parents=True)
    (work / "allowlists" / "conda.yaml").write_text(conda_yaml.format(url=server.url))
    env = {
        "AIRLOCK_DATA_DIR": str(work / "data"),
        "AIRLOCK_ALLOWLISTS": str(work / "allowlists"),
        "AIRLOCK_PYPI_UPSTREAM": f"{server.url}/simple/",
    }
    try:
        airlock = AirlockProcess(work, env).start()
    except BaseException:
        server.stop()
        raise
    return airlock, server, env, upstream


def sync_conda(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`airlock sync conda ARGS` with the service's settings, as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mirror", "sync", "conda", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
