"""Several replicas on one database: started together on an empty (or older) PostgreSQL database,
they migrate it once — one under the advisory lock, the others wait and find nothing to do."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from mirror.store.db import SCHEMA_HEAD


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """PostgreSQL, PyPI and conda upstreams, the allowlists; replicas are added by the fixtures below."""
    from testkit.replicas import start_replica_world

    world = start_replica_world(tmp_path_factory.mktemp("replicas"))
    yield world
    world.stop()


@pytest.fixture(scope="module")
def postgres(world):
    return world.postgres


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


@pytest.fixture(scope="module")
def two_replicas(world):
    """Two `airlock up` replicas, each with its own data dir, on one PostgreSQL database."""
    return [world.add_replica("a"), world.add_replica("b")]


def test_decisions_made_on_one_replica_are_installable_through_the_other(world, two_replicas, tmp_path):
    import asyncio

    import rattler

    from testkit.replicas import in_channel, served_by, until
    from testkit.worlds import pip

    a, b = two_replicas
    approved = world.approve(a, "pypi", "kappa")
    served = until(lambda: served_by(b, "kappa"), 30)
    print(f"PyPI approval on A served by B after {served - approved:.2f} s")
    installed = pip(
        ["install", "--index-url", f"{b.url}/pypi/prod/simple/", "--target", str(tmp_path / "site"), "kappa"], tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "site" / "kappa").is_dir()

    approved = world.approve(b, "conda", "libcublas")
    served = until(lambda: in_channel(a, "libcublas"), 120)  # A syncs by itself when the shared decisions change
    print(f"conda approval on B served by A after {served - approved:.2f} s")

    async def solve_and_install() -> list[str]:
        records = await rattler.solve(
            sources=[f"{a.url}/conda/prod/conda-forge"], specs=["libcublas"], platforms=["linux-64", "noarch"]
        )
        await rattler.install(records, target_prefix=str(tmp_path / "prefix"), show_progress=False)
        return [record.name.normalized for record in records]

    assert "libcublas" in asyncio.run(solve_and_install())
    assert list((tmp_path / "prefix" / "conda-meta").glob("libcublas-11.8-*.json"))
    verified = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify"],
        env={"AIRLOCK_DATABASE_URL": world.postgres.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.fixture(scope="module")
def balancer(two_replicas, tmp_path_factory):
    """HAProxy with the shipped deploy/haproxy/haproxy.cfg in front of both replicas."""
    from testkit.balancer import Balancer
    from testkit.replicas import until

    balancer = Balancer(tmp_path_factory.mktemp("haproxy"), [replica.url for replica in two_replicas]).start()
    until(lambda: [s["status"] for s in balancer.servers().values()] == ["UP", "UP"], 30)
    yield balancer
    balancer.stop()


def _ask_until_answered(url: str, token: str, number: int) -> httpx.Response:
    """A client that retries what the balancer could not deliver (as the CLI and CI scripts do)."""
    from testkit.replicas import request_body

    body = request_body("pypi", "kappa", f"request {number} filed while a replica dies")
    for _ in range(20):
        try:
            answer = httpx.post(f"{url}/api/v1/exceptions", json=body, headers={"Authorization": f"Bearer {token}"})
            if answer.status_code < 500:
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"request {number} never answered through the balancer")


def test_fifty_installs_through_the_balancer_survive_a_replica_killed_mid_run(
    postgres, two_replicas, balancer, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from testkit.replicas import until
    from testkit.worlds import last_audit_seq, mint_token, pip

    a, _ = two_replicas
    index = f"{balancer.url}/pypi/prod/simple/"
    alice = mint_token(postgres.url, "data-scientist", "alice")
    first_seq = last_audit_seq(postgres.url)

    def install(number: int) -> subprocess.CompletedProcess:
        target = tmp_path / f"site{number}"
        return pip(["install", "--index-url", index, "--target", str(target), "alpha"], tmp_path / f"client{number}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        installs = [pool.submit(install, number) for number in range(50)]
        asks = [pool.submit(_ask_until_answered, balancer.url, alice, number) for number in range(10)]
        for done, _ in enumerate(as_completed(installs)):
            if done == 5:  # mid-run: 45 installs still going, requests being filed
                a.process.kill()  # SIGKILL, as the OOM killer or a lost node does; its children follow
        results = [future.result() for future in installs]
        answers = [future.result() for future in asks]
    failed = [r.stdout[-500:] + r.stderr[-1500:] for r in results if r.returncode != 0]
    assert failed == []
    assert all((tmp_path / f"site{n}" / "alpha").is_dir() for n in range(50))
    assert [answer.status_code for answer in answers] == [201] * 10, [answer.text for answer in answers]

    # The audit: one `exception.requested` record per request answered, none twice, the chain whole.
    filed = {f"exception {answer.json()['id']}" for answer in answers}
    rows = subprocess.run(
        [
            "psql",
            "-At",
            postgres.url.replace("postgresql+psycopg", "postgresql"),
            "-c",
            f"select subject from audit_records where seq > {first_seq} and action = 'exception.requested'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    subjects = [row for row in rows if row]
    assert filed <= set(subjects) and len(subjects) == len(set(subjects))
    verified = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify"],
        env={"AIRLOCK_DATABASE_URL": postgres.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The killed replica, started again on its own data dir, rejoins and serves.
    until(lambda: balancer.servers()["replica-1"]["status"].startswith("DOWN"), 10)
    a.start()
    until(lambda: balancer.servers()["replica-1"]["status"] == "UP", 30)
    before = int(balancer.servers()["replica-1"]["stot"])
    again = [install(50 + number) for number in range(4)]
    assert [r.returncode for r in again] == [0] * 4, [r.stderr[-1500:] for r in again]
    assert int(balancer.servers()["replica-1"]["stot"]) > before
