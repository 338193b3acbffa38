"""Curated conda channels end to end: sync, verify, conda-index, publish atomically, serve;
py-rattler solves and installs from Airlock over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
import rattler

from testkit.conda import CondaPackage, build_package
from testkit.worlds import start_conda_airlock, sync_conda

PACKAGES = [
    CondaPackage("python", "3.11.9", "h_0_cpython"),
    CondaPackage("libblas", "3.9.0", "20_linux64_openblas"),
    CondaPackage("numpy", "1.25.0", "py311_0", depends=("python >=3.11,<3.12", "libblas >=3.9")),
    CondaPackage("numpy", "1.26.4", "py311_0", depends=("python >=3.11,<3.12", "libblas >=3.9"), fmt=".conda"),
    CondaPackage("numpy", "2.0.0", "py311_0", depends=("python >=3.11,<3.12", "libblas >=3.9")),
    CondaPackage("numpy", "2.0.0", "py311_0", depends=("python >=3.11,<3.12", "libblas >=3.9"), fmt=".conda"),
    CondaPackage(
        "pytorch", "2.3.1", "cuda118_py311_0", depends=("python >=3.11,<3.12", "numpy >=1.26", "libcublas >=11")
    ),
    CondaPackage("pytorch", "2.3.1", "cpu_py311_0", depends=("python >=3.11,<3.12", "numpy >=1.26")),
    CondaPackage("libcublas", "11.8", "h_0"),
    CondaPackage("tqdm", "4.66.1", "pyhd8ed1ab_0", subdir="noarch"),
]
CONDA_YAML = """\
ecosystem: conda
environments: {{prod: {{}}, preprod: {{extends: prod}}}}
channels:
  conda-forge: {{url: {url}, subdirs: [noarch, linux-64]}}
packages:
  - {{spec: "python >=3.10,<3.13", environments: [prod], reason: interpreter, owner: ml}}
  - {{spec: "libblas >=3.9", environments: [prod], reason: blas, owner: ml}}
  - {{spec: "numpy >=1.26", environments: [prod], reason: numerics, owner: ml}}
  - {{spec: "pytorch >=2.3 *cuda*", environments: [prod], reason: gpu training, owner: ml}}
  - {{spec: "tqdm", environments: [preprod], reason: progress bars, owner: ml}}
"""


@pytest.fixture(scope="module")
def conda_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conda")
    airlock, server, env, upstream = start_conda_airlock(tmp, CONDA_YAML, PACKAGES)
    work = tmp / "airlock"
    world = {"upstream": upstream, "server": server, "airlock": airlock, "env": env, "work": work, "tmp": tmp}
    yield world
    airlock.stop()
    server.stop()


def sync(world, *args):
    return sync_conda(world["env"], *args)


def channel(world, env="prod"):
    return f"{world['airlock'].url}/conda/{env}/conda-forge"


def solve_and_install(url, specs, prefix):
    async def run():
        records = await rattler.solve(sources=[url], specs=specs, platforms=["linux-64", "noarch"])
        await rattler.install(records, target_prefix=str(prefix), show_progress=False)
        return {r.name.normalized: str(r.version) for r in records}

    return asyncio.run(run())


def test_before_a_sync_the_channel_says_so(conda_world):
    response = httpx.get(f"{channel(conda_world)}/linux-64/repodata.json")
    assert response.status_code == 503
    assert "has not been synced yet: run `airlock sync conda --env prod`" in response.headers["X-Airlock-Reason"]


def test_sync_publishes_exactly_the_allowlisted_records(conda_world):
    result = sync(conda_world)
    assert result.returncode == 0, result.stderr
    assert "published prod/conda-forge" in result.stdout and "published preprod/conda-forge" in result.stdout
    assert "warning: pytorch 2.3.1 needs libcublas >=11 which is not allowlisted for prod" in result.stdout
    # py-rattler solves every allowlisted spec against the published channel alone:
    unsolvable = [line for line in result.stdout.splitlines() if "cannot be installed from the curated" in line]
    assert [line.split(" cannot")[0] for line in unsolvable] == ["warning: pytorch >=2.3 *cuda*"] * 2
    assert "libcublas" in unsolvable[0]
    prod = httpx.get(f"{channel(conda_world)}/linux-64/repodata.json").json()
    files = set(prod["packages"]) | set(prod["packages.conda"])
    assert files == {
        "python-3.11.9-h_0_cpython.tar.bz2",
        "libblas-3.9.0-20_linux64_openblas.tar.bz2",
        "numpy-1.26.4-py311_0.conda",
        "numpy-2.0.0-py311_0.tar.bz2",
        "numpy-2.0.0-py311_0.conda",
        "pytorch-2.3.1-cuda118_py311_0.tar.bz2",
    }
    upstream = json.loads((conda_world["upstream"].root / "linux-64" / "repodata.json").read_text())
    assert (
        prod["packages.conda"]["numpy-1.26.4-py311_0.conda"]["sha256"]
        == upstream["packages.conda"]["numpy-1.26.4-py311_0.conda"]["sha256"]
    )
    assert httpx.get(f"{channel(conda_world)}/noarch/repodata.json").json()["packages"] == {}
    assert (
        "tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2"
        in httpx.get(f"{channel(conda_world, 'preprod')}/noarch/repodata.json").json()["packages"]
    )
    again = sync(conda_world)
    assert again.returncode == 0 and "unchanged prod/conda-forge" in again.stdout
    as_json = sync(conda_world, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["unchanged"] == ["prod/conda-forge", "preprod/conda-forge"]


def test_sync_json_report_of_a_first_publish(conda_world, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "sync", "conda", "--json"],
        capture_output=True,
        text=True,
        cwd=conda_world["work"],
        env={**os.environ, **conda_world["env"], "AIRLOCK_DATA_DIR": str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["published"] == ["prod/conda-forge", "preprod/conda-forge"]
    assert report["added"]["prod"] == ["libblas", "numpy", "python", "pytorch"]


def test_rattler_solves_and_installs_from_the_curated_channel(conda_world, tmp_path):
    sync(conda_world)
    installed = solve_and_install(channel(conda_world), ["numpy"], tmp_path / "env")
    assert installed == {"numpy": "2.0.0", "python": "3.11.9", "libblas": "3.9.0"}
    assert (tmp_path / "env" / "share" / "numpy" / "2.0.0-py311_0.txt").exists()
    with pytest.raises(Exception, match="numpy"):
        solve_and_install(channel(conda_world), ["numpy 1.25.*"], tmp_path / "blocked")
    with pytest.raises(Exception, match="tqdm"):
        solve_and_install(channel(conda_world), ["tqdm"], tmp_path / "tqdm")
    assert solve_and_install(channel(conda_world, "preprod"), ["tqdm"], tmp_path / "pre") == {"tqdm": "4.66.1"}


def test_blocked_unknown_and_traversal_paths_are_404(conda_world):
    sync(conda_world)
    base = channel(conda_world)
    for path in (
        "linux-64/numpy-1.25.0-py311_0.tar.bz2",
        "noarch/tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2",
        "linux-64/pytorch-2.3.1-cpu_py311_0.tar.bz2",
        "linux-64/..%2F..%2Fcache%2Fverified.json",
        "linux-64/../../preprod/conda-forge/noarch/tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2",
        "linux-64/nothing.conda",
    ):
        response = httpx.get(f"{base}/{path}")
        assert response.status_code == 404, path
    blocked = httpx.get(f"{base}/linux-64/numpy-1.25.0-py311_0.tar.bz2")
    assert "is not in the curated prod/conda-forge channel" in blocked.headers["X-Airlock-Reason"]
    assert (
        httpx.get(f"{conda_world['airlock'].url}/conda/staging/conda-forge/linux-64/repodata.json").status_code == 404
    )
    served = httpx.get(f"{base}/linux-64/numpy-2.0.0-py311_0.conda")
    assert (
        served.status_code == 200
        and served.content == (conda_world["upstream"].root / "linux-64" / "numpy-2.0.0-py311_0.conda").read_bytes()
    )


def test_a_tampered_upstream_file_publishes_nothing_and_names_the_file(conda_world):
    sync(conda_world)
    before = httpx.get(f"{channel(conda_world)}/linux-64/repodata.json").json()
    upstream = conda_world["upstream"]
    upstream.add(CondaPackage("numpy", "2.1.0", "py311_0", depends=("python >=3.11,<3.12",)))
    upstream.publish()
    target = upstream.root / "linux-64" / "numpy-2.1.0-py311_0.tar.bz2"
    target.write_bytes(
        build_package(CondaPackage("numpy", "2.1.0", "py311_0", payload=b"evil"))
    )  # after repodata was written
    result = sync(conda_world)
    assert result.returncode == 1
    assert "conda-forge/linux-64/numpy-2.1.0-py311_0.tar.bz2: s" in result.stderr  # size or sha256 mismatch
    assert "nothing new was published; the previous channels are still served" in result.stderr
    assert httpx.get(f"{channel(conda_world)}/linux-64/repodata.json").json() == before
    upstream.packages.pop()
    target.unlink()
    upstream.publish()
    assert sync(conda_world).returncode == 0


def test_the_shim_stays_sufficient_for_conda_index(tmp_path):
    from mirror.conda.indexer import index_subdirs, indexed_files

    folder = tmp_path / "channel" / "linux-64"
    folder.mkdir(parents=True)
    (tmp_path / "channel" / "noarch").mkdir()
    for package in PACKAGES[:4]:
        (folder / package.filename).write_bytes(build_package(package))
    index_subdirs(tmp_path / "channel", ["linux-64", "noarch"], tmp_path / "out")
    assert indexed_files(tmp_path / "out" / "linux-64" / "repodata.json") == {p.filename for p in PACKAGES[:4]}
    # Cross-check against rattler's own indexer on the same files.
    asyncio.run(rattler.index.index_fs(tmp_path / "channel"))
    ours = json.loads((tmp_path / "out" / "linux-64" / "repodata.json").read_text())
    theirs = json.loads((tmp_path / "channel" / "linux-64" / "repodata.json").read_text())
    for key in ("packages", "packages.conda"):
        assert {n: (r["sha256"], r["depends"]) for n, r in ours[key].items()} == {
            n: (r["sha256"], r["depends"]) for n, r in theirs[key].items()
        }


def test_a_corrupt_archive_that_conda_index_skips_is_caught(conda_world):
    sync(conda_world)
    upstream = conda_world["upstream"]
    broken = CondaPackage("numpy", "2.2.0", "py311_0")
    (upstream.root / "linux-64" / broken.filename).write_bytes(b"not a bzip2 tarball at all")
    upstream.add(broken)
    upstream.publish()  # upstream's repodata carries the corrupt file's real hash: only indexing can tell
    try:
        result = sync(conda_world)
        assert result.returncode == 1
        assert (
            "prod/conda-forge/linux-64: conda-index output differs from the verified files (skipped: numpy-2.2.0-py311_0.tar.bz2"
            in result.stderr
        )
        assert (
            "numpy-2.2.0-py311_0.tar.bz2"
            not in httpx.get(f"{channel(conda_world)}/linux-64/repodata.json").json()["packages"]
        )
    finally:
        upstream.packages.remove(broken)
        (upstream.root / "linux-64" / broken.filename).unlink()
        upstream.publish()
    assert sync(conda_world).returncode == 0


def test_an_approved_conda_exception_reaches_the_channel(conda_world):
    from mirror.auth.tokens import create_token
    from mirror.store.db import Database

    sync(conda_world)
    database = Database(f"sqlite:///{conda_world['work'] / 'data' / 'airlock.db'}")
    with database.transaction() as session:
        alice = create_token(session, "alice", "data-scientist", ["churn-model"], None)[0]
        gina = create_token(session, "gina", "data-governance", [], None)[0]
    database.dispose()
    url = conda_world["airlock"].url
    body = {
        "ecosystem": "conda",
        "package": "tqdm >=4.66",
        "environments": ["prod"],
        "project": "churn-model",
        "justification": "progress bars in the prod training job logs",
    }
    created = httpx.post(
        f"{url}/api/v1/exceptions", json=body, headers={"Authorization": f"Bearer {alice}"}, timeout=30
    )
    assert created.status_code == 201, created.text
    approved = httpx.post(
        f"{url}/api/v1/exceptions/{created.json()['id']}/approve",
        json={"comment": "ok"},
        headers={"Authorization": f"Bearer {gina}"},
        timeout=30,
    )
    assert approved.status_code == 200
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (
            "tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2"
            in httpx.get(f"{channel(conda_world)}/noarch/repodata.json").json()["packages"]
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the approved conda exception did not reach the prod channel")
    revoked = httpx.post(
        f"{url}/api/v1/exceptions/{created.json()['id']}/revoke",
        json={"comment": "done"},
        headers={"Authorization": f"Bearer {gina}"},
        timeout=30,
    )
    assert revoked.status_code == 200
    # Served repodata follows the policy at once, before the next sync rewrites the channel.
    deadline = time.monotonic() + 2
    while (
        "tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2"
        in httpx.get(f"{channel(conda_world)}/noarch/repodata.json").json()["packages"]
    ):
        assert time.monotonic() < deadline, "revocation not enforced within 2 s"
        time.sleep(0.05)
    assert httpx.get(f"{channel(conda_world)}/noarch/tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2").status_code == 404


PROD_LINUX = {
    "python-3.11.9-h_0_cpython.tar.bz2",
    "libblas-3.9.0-20_linux64_openblas.tar.bz2",
    "numpy-1.26.4-py311_0.conda",
    "numpy-2.0.0-py311_0.tar.bz2",
    "numpy-2.0.0-py311_0.conda",
    "pytorch-2.3.1-cuda118_py311_0.tar.bz2",
}


def sync_in_process(world, data, conda_yaml: str):
    from mirror.conda.channel import CondaSync
    from mirror.policy import build_allowlist, load_policy_files
    from tests.conftest import NOW

    allowlist = build_allowlist(
        load_policy_files([("allowlists/conda.yaml", conda_yaml.format(url=world["server"].url))], NOW), (), NOW
    )
    with httpx.Client(timeout=60) as client:
        return CondaSync(data, client).run(allowlist)


def published(data, env, subdir="linux-64"):
    from mirror.conda.indexer import indexed_files

    return indexed_files(data / "conda" / env / "conda-forge" / subdir / "repodata.json")


def test_a_cold_sync_warms_conda_index_while_it_downloads(conda_world, tmp_path, monkeypatch):
    from mirror.conda import channel as conda_channel
    from mirror.conda import indexer
    from mirror.conda.download import VerifiedCache
    from mirror.conda.indexer import IndexWarmer

    warmed, ensure, download, warm = [], VerifiedCache.ensure, VerifiedCache._download, IndexWarmer._warm
    # The fixture's channel is small and local: warm from one file, and let files arrive one by one.
    monkeypatch.setattr(conda_channel, "WARM_FROM_FILES", 1)
    monkeypatch.setattr(indexer, "ROUND_FROM_FILES", 1)
    monkeypatch.setattr(
        VerifiedCache, "ensure", lambda self, client, wanted, on_verified: ensure(self, client, wanted, 1, on_verified)
    )
    monkeypatch.setattr(VerifiedCache, "_download", lambda self, *a: (time.sleep(0.2), download(self, *a))[1])
    monkeypatch.setattr(
        IndexWarmer,
        "_warm",
        lambda self, staging, subdirs: (warmed.append(staging.parent.name), warm(self, staging, subdirs)),
    )
    report = sync_in_process(conda_world, tmp_path / "data", CONDA_YAML)
    assert report.problems == [] and sorted(report.published) == ["preprod/conda-forge", "prod/conda-forge"]
    assert warmed, "no warm-up ran while the files downloaded"
    assert published(tmp_path / "data", "prod") == PROD_LINUX
    assert "tqdm-4.66.1-pyhd8ed1ab_0.tar.bz2" in published(tmp_path / "data", "preprod", "noarch")


def test_files_already_staged_but_not_live_are_published(conda_world, tmp_path):
    # A warm-up or a failed publish can leave the staging folder ahead of the live channel.
    narrow = CONDA_YAML.replace('  - {{spec: "numpy >=1.26", environments: [prod], reason: numerics, owner: ml}}\n', "")
    data = tmp_path / "data"
    assert sync_in_process(conda_world, data, CONDA_YAML).problems == []  # every file verified in the cache
    assert sync_in_process(conda_world, data, narrow).problems == []
    assert not any(name.startswith("numpy") for name in published(data, "prod"))
    staging = data / "conda" / "staging" / "prod" / "conda-forge" / "linux-64"
    for name in PROD_LINUX:
        if not (staging / name).exists():
            os.link(data / "conda" / "cache" / "conda-forge" / "linux-64" / name, staging / name)
    report = sync_in_process(conda_world, data, CONDA_YAML)
    assert "prod/conda-forge" in report.published and published(data, "prod") == PROD_LINUX


def test_closure_names_what_the_conda_entries_lack_and_write_adds_it(conda_world, tmp_path):
    allowlists = tmp_path / "allowlists"
    allowlists.mkdir()
    (allowlists / "conda.yaml").write_text((conda_world["work"] / "allowlists" / "conda.yaml").read_text())

    def closure(*args):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "mirror",
                "allowlist",
                "closure",
                "--env",
                "prod",
                "--ecosystem",
                "conda",
                "--allowlists",
                str(allowlists),
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **conda_world["env"]},
            timeout=300,
        )

    result = closure("--json")
    assert result.returncode == 1, result.stderr
    [missing] = json.loads(result.stdout)["missing"]
    assert (missing["package"], missing["requirement"], missing["required_by"], missing["targets"]) == (
        "libcublas",
        "libcublas >=11",
        ["pytorch 2.3.1"],
        ["linux-64"],
    )
    assert missing["fix"] == '{spec: "libcublas >=11", reason: dependency of pytorch, owner: ml}'
    written = closure("--write")
    assert written.returncode == 0, written.stdout + written.stderr
    assert (
        '  - spec: "libcublas >=11"\n    environments: [prod]\n    reason: dependency of pytorch\n    owner: ml\n'
        in (allowlists / "conda.yaml").read_text()
    )
    assert closure().returncode == 0
