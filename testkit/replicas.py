"""Several `airlock up` replicas (own data dirs) on one PostgreSQL database, with a PyPI and a conda
upstream: what tests/test_replicas.py and bench/replicas.py both start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.postgres import PostgresServer
from testkit.servers import AirlockProcess, StaticServer

CONDA_YAML = """\
ecosystem: conda
environments: {{prod: {{}}}}
channels:
  conda-forge: {{url: {url}, subdirs: [noarch, linux-64]}}
packages:
  - {{spec: "python >=3.10,<3.13", environments: [prod], reason: interpreter, owner: ml}}
"""
PYPI_YAML = """\
ecosystem: pypi
environments: {prod: {}}
packages:
  - {name: alpha, environments: [prod], reason: core, owner: ml}
"""
CONDA_PACKAGES = (("python", "3.11.9", "h_0_cpython"), ("libcublas", "11.8", "h_0"), ("libcusparse", "11.8", "h_0"))
PYPI_PROJECTS = ("alpha", "kappa", "mu", "nu")


@dataclass
class ReplicaWorld:
    postgres: PostgresServer
    root: Path
    env: dict[str, str]
    """Settings every replica shares; each adds its own AIRLOCK_DATA_DIR."""
    servers: list = field(default_factory=list)
    replicas: list[AirlockProcess] = field(default_factory=list)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def add_replica(self, name: str, sync: bool = True) -> AirlockProcess:
        """Start one more replica on a fresh data dir (and publish its conda channels)."""
        env = {**self.env, "AIRLOCK_DATA_DIR": str(self.data_dir(name))}
        replica = AirlockProcess(self.root / name, env).start()
        self.replicas.append(replica)
        if sync:
            self.sync_conda(name)
        return replica

    def data_dir(self, name: str) -> Path:
        return self.root / name / "data"

    def sync_conda(self, name: str) -> None:
        """`airlock sync conda` for replica `name`, as its operator (or its pod's init container) runs it."""
        env = {**os.environ, **self.env, "AIRLOCK_DATA_DIR": str(self.data_dir(name))}
        synced = subprocess.run(
            [sys.executable, "-m", "mirror", "sync", "conda"], capture_output=True, text=True, env=env, timeout=600
        )
        if synced.returncode != 0:
            raise RuntimeError(f"conda sync of replica {name} failed:\n{synced.stderr}")

    def token(self, role: str, user: str) -> str:
        """A token of `user` in `role`, minted once (a mint writes a token row and an audit record)."""
        from testkit.worlds import mint_token

        if (role, user) not in self.tokens:
            self.tokens[role, user] = mint_token(self.postgres.url, role, user)
        return self.tokens[role, user]

    def approve(self, replica: AirlockProcess, ecosystem: str, package: str) -> float:
        """Ask for `package` in prod and approve it through `replica`'s API; the instant of the
        approval's answer (time.monotonic)."""
        headers = {"Authorization": f"Bearer {self.token('data-scientist', 'alice')}"}
        body = request_body(ecosystem, package)
        asked = httpx.post(f"{replica.url}/api/v1/exceptions", json=body, headers=headers, timeout=60)
        if asked.status_code != 201:
            raise AssertionError(asked.text)
        return self._decide(replica, "approve", asked.json()["id"])

    def _decide(self, replica: AirlockProcess, verb: str, request_id: int) -> float:
        headers = {"Authorization": f"Bearer {self.token('data-governance', 'gina')}"}
        answer = httpx.post(
            f"{replica.url}/api/v1/exceptions/{request_id}/{verb}", json={"comment": "ok"}, headers=headers, timeout=60
        )
        if answer.status_code != 200:
            raise AssertionError(answer.text)
        return time.monotonic()

    def stop(self) -> None:
        for process in [*self.replicas, *self.servers]:
            process.stop()
        self.postgres.stop()


def request_body(
    ecosystem: str, package: str, justification: str = "needed by the churn model's feature pipeline"
) -> dict:
    """An exception request for `package` in prod for the churn-model project."""
    return {
        "ecosystem": ecosystem,
        "package": package,
        "environments": ["prod"],
        "project": "churn-model",
        "justification": justification,
    }


def start_replica_world(root: Path) -> ReplicaWorld:
    """PostgreSQL, a PyPI upstream (PYPI_PROJECTS), a conda channel (CONDA_PACKAGES) and the
    allowlists; no replica yet (add_replica)."""
    import tempfile

    from testkit.conda import CondaChannelDir, CondaPackage
    from testkit.pypi import Release, Upstream
    from testkit.servers import PypiIndexServer

    folder = Path(tempfile.mkdtemp(prefix="airlock-pg-"))  # postgres (its own user) must reach it
    folder.chmod(0o755)
    postgres = PostgresServer(folder).start()
    conda = CondaChannelDir(root / "conda")
    conda.add(*(CondaPackage(*package) for package in CONDA_PACKAGES))
    conda.publish()
    pypi = Upstream(root / "pypi")
    pypi.add(*(Release(name, "1.0") for name in PYPI_PROJECTS))
    pypi.publish()
    servers = [StaticServer(conda.root, keep_alive=True).start(), PypiIndexServer(pypi.root).start()]
    allowlists = root / "allowlists"
    allowlists.mkdir(parents=True)
    (allowlists / "conda.yaml").write_text(CONDA_YAML.format(url=servers[0].url))
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    env = {
        "AIRLOCK_ALLOWLISTS": str(allowlists),
        "AIRLOCK_DATABASE_URL": postgres.url,
        "AIRLOCK_PYPI_UPSTREAM": f"{servers[1].url}/simple/",
    }
    return ReplicaWorld(postgres, root, env, servers)


def until(check: Callable[[], bool], timeout: float) -> float:
    """Poll `check` every 0.1 s; the instant (time.monotonic) it first held."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def served_by(replica: AirlockProcess, package: str) -> bool:
    """The replica's prod PyPI page lists `package`'s files (a refused project's page lists none and
    withholds none, so the page's files are counted, not its X-Airlock-Withheld)."""
    page = httpx.get(
        f"{replica.url}/pypi/prod/simple/{package}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    return page.status_code == 200 and bool(page.json()["files"])


def in_channel(replica: AirlockProcess, package: str) -> bool:
    """The replica's curated prod conda channel lists `package`."""
    answer = httpx.get(f"{replica.url}/conda/prod/conda-forge/linux-64/repodata.json")
    return answer.status_code == 200 and any(r["name"] == package for r in answer.json()["packages"].values())
