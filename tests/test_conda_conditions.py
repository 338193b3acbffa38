"""Conditions on a curated conda channel: a package built too recently (`min_age`, from the record's
`timestamp`) is withheld until it comes of age, a denied licence (the record's `license`) is never
published; py-rattler solves and installs what is left."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import rattler

from testkit.conda import CondaPackage
from testkit.worlds import start_conda_airlock, sync_conda

NOW_MS = int(time.time() * 1000)
DAY_MS = 86_400_000
PACKAGES = [
    CondaPackage("python", "3.11.9", "h_0_cpython", timestamp_ms=NOW_MS - 400 * DAY_MS),
    CondaPackage("fresh", "0.9", "h_0", depends=("python >=3.11",), timestamp_ms=NOW_MS - 30 * DAY_MS),
    CondaPackage("fresh", "1.0", "h_0", depends=("python >=3.11",), timestamp_ms=NOW_MS - 3_600_000),
    CondaPackage("copyleft", "1.0", "h_0", license="AGPL-3.0-only", timestamp_ms=NOW_MS - 90 * DAY_MS),
]
CONDA_YAML = """\
ecosystem: conda
environments:
  prod: {{min_age: 7d, licenses: {{deny: [AGPL-3.0-only]}}}}
channels:
  conda-forge: {{url: {url}, subdirs: [noarch, linux-64]}}
packages:
  - {{spec: "python >=3.10", environments: [prod], reason: interpreter, owner: ml}}
  - {{spec: "fresh", environments: [prod], reason: new releases often, owner: ml}}
  - {{spec: "copyleft", environments: [prod], reason: legal asked to check it, owner: legal}}
"""


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conda-conditions")
    airlock, server, env, _ = start_conda_airlock(tmp, CONDA_YAML, PACKAGES)
    synced = sync_conda(env)
    assert synced.returncode == 0, synced.stderr
    yield f"{airlock.url}/conda/prod/conda-forge", tmp
    airlock.stop()
    server.stop()


def test_served_repodata_withholds_young_and_denied_packages(channel):
    url, _ = channel
    served = httpx.get(f"{url}/linux-64/repodata.json").json()
    files = sorted(served["packages"])
    assert files == ["fresh-0.9-h_0.tar.bz2", "python-3.11.9-h_0_cpython.tar.bz2"]
    too_young = httpx.get(f"{url}/linux-64/fresh-1.0-h_0.tar.bz2")
    assert too_young.status_code == 404
    assert (
        "fresh 1.0 h_0 was published 1 hour ago; prod requires 7 days (min_age" in too_young.headers["X-Airlock-Reason"]
    )


def test_rattler_installs_the_release_that_is_old_enough(channel):
    url, tmp = channel

    async def solve():
        records = await rattler.solve(sources=[url], specs=["fresh"], platforms=["linux-64", "noarch"])
        await rattler.install(records, target_prefix=str(tmp / "env"), show_progress=False)
        return {r.name.normalized: str(r.version) for r in records}

    assert asyncio.run(solve()) == {"fresh": "0.9", "python": "3.11.9"}
