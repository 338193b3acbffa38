"""Several replicas on one database: started together on an empty (or older) PostgreSQL database,
they migrate it once — one under the advisory lock, the others wait and find nothing to do."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from mirror.store.db import SCHEMA_HEAD


@pytest.fixture(scope="module")
def postgres():
    from testkit.postgres import PostgresServer

    folder = Path(tempfile.mkdtemp(prefix="airlock-pg-"))  # postgres (its own user) must reach it
    folder.chmod(0o755)
    server = PostgresServer(folder).start()
    yield server
    server.stop()


@pytest.mark.parametrize("attempt", range(3))
def test_four_replicas_started_together_migrate_a_fresh_database_once(postgres, attempt):
    name = f"replicas{attempt}"
    subprocess.run(
        ["psql", f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres", "-c", f"create database {name}"],
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{name}"
    # `python -m mirror.store.migrate` is the step `airlock up` (and the gate) take at start.
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "mirror.store.migrate"],
            env={"AIRLOCK_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(replica.wait(120), replica.stderr.read()) for replica in replicas]
    assert [code for code, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    revision = subprocess.run(
        [
            "psql",
            "-At",
            f"postgresql://postgres@127.0.0.1:{postgres.port}/{name}",
            "-c",
            "select version_num from alembic_version",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert revision == SCHEMA_HEAD


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


@pytest.fixture(scope="module")
def two_replicas(postgres, tmp_path_factory):
    """Two `airlock up` replicas, each with its own data dir, on one PostgreSQL database."""
    from testkit.conda import CondaChannelDir, CondaPackage
    from testkit.pypi import Release, Upstream
    from testkit.servers import AirlockProcess, PypiIndexServer, StaticServer
    from testkit.worlds import sync_conda

    tmp = tmp_path_factory.mktemp("replicas")
    conda = CondaChannelDir(tmp / "conda")
    conda.add(CondaPackage("python", "3.11.9", "h_0_cpython"), CondaPackage("libcublas", "11.8", "h_0"))
    conda.publish()
    conda_server = StaticServer(conda.root, keep_alive=True).start()
    pypi = Upstream(tmp / "pypi")
    pypi.add(Release("alpha", "1.0"), Release("kappa", "1.0"))
    pypi.publish()
    pypi_server = PypiIndexServer(pypi.root).start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "conda.yaml").write_text(CONDA_YAML.format(url=conda_server.url))
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    replicas = []
    for name in ("a", "b"):
        env = {
            "AIRLOCK_DATA_DIR": str(tmp / name / "data"),
            "AIRLOCK_ALLOWLISTS": str(allowlists),
            "AIRLOCK_DATABASE_URL": postgres.url,
            "AIRLOCK_PYPI_UPSTREAM": f"{pypi_server.url}/simple/",
        }
        replica = AirlockProcess(tmp / name, env).start()
        synced = sync_conda(env)
        assert synced.returncode == 0, synced.stderr
        replicas.append(replica)
    yield replicas
    for replica in replicas:
        replica.stop()
    pypi_server.stop()
    conda_server.stop()


def _approve(postgres, replica, body: dict) -> float:
    """Ask and approve through `replica`'s API; the instant of the approval's answer."""
    from testkit.worlds import mint_token

    alice, gina = (
        mint_token(postgres.url, role, user)
        for role, user in (("data-scientist", "alice"), ("data-governance", "gina"))
    )
    asked = httpx.post(f"{replica.url}/api/v1/exceptions", json=body, headers={"Authorization": f"Bearer {alice}"})
    assert asked.status_code == 201, asked.text
    approved = httpx.post(
        f"{replica.url}/api/v1/exceptions/{asked.json()['id']}/approve",
        json={"comment": "ok"},
        headers={"Authorization": f"Bearer {gina}"},
    )
    assert approved.status_code == 200, approved.text
    return time.monotonic()


def _until(check, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def test_decisions_made_on_one_replica_are_served_by_the_other(postgres, two_replicas):
    a, b = two_replicas
    justification = {"project": "churn-model", "justification": "needed by the churn model's feature pipeline"}
    approved = _approve(
        postgres, a, {"ecosystem": "pypi", "package": "kappa", "environments": ["prod"], **justification}
    )
    served = _until(lambda: httpx.get(f"{b.url}/pypi/prod/simple/kappa/").headers.get("X-Airlock-Withheld") == "0", 30)
    print(f"PyPI approval on A served by B after {served - approved:.2f} s")
    approved = _approve(
        postgres, b, {"ecosystem": "conda", "package": "libcublas", "environments": ["prod"], **justification}
    )

    def in_channel() -> bool:
        answer = httpx.get(f"{a.url}/conda/prod/conda-forge/linux-64/repodata.json")
        return answer.status_code == 200 and any(r["name"] == "libcublas" for r in answer.json()["packages"].values())

    served = _until(in_channel, 120)  # A syncs by itself when the shared decisions change
    print(f"conda approval on B served by A after {served - approved:.2f} s")
    verified = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify"],
        env={"AIRLOCK_DATABASE_URL": postgres.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
