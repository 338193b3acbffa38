"""The base-image proxy with real parts: Docker engine, Debian's registry upstream and cache,
and an unmodified docker client pulling through Airlock."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from testkit.docker import Registry
from testkit.servers import AirlockProcess

IMAGE = "azureml/openmpi4.1.0-ubuntu22.04"
CONTAINERS_YAML = """\
ecosystem: containers
environments: {{prod: {{}}, preprod: {{extends: prod}}}}
upstreams:
  mar: {{url: {url}}}
images:
  - image: mar/azureml/openmpi4.1.0-ubuntu22.04
    tags: ["2024*"]
    environments: [prod]
    reason: base for training images
    owner: ml-platform
  - image: mar/azureml/pinned
    digests: ["{pinned}"]
    environments: [prod]
    reason: pinned base
    owner: ml-platform
"""


@pytest.fixture(scope="module")
def registry_world(tmp_path_factory, docker_engine):
    tmp = tmp_path_factory.mktemp("containers")
    engine = docker_engine
    upstream = Registry(tmp / "upstream").start()
    images = {
        f"{IMAGE}:20240501": ["mpi runtime", "python", "training libraries"],
        f"{IMAGE}:2023": ["old mpi runtime", "old python"],
        f"{IMAGE}:20240601": ["mpi runtime", "python", "never pulled before the upstream goes down"],
        "azureml/unlisted:latest": ["something else"],
        "azureml/pinned:1.0": ["pinned content"],
    }
    for name, layers in images.items():
        engine.build(f"{upstream.host}/{name}", layers, tmp / "contexts" / name.replace("/", "_").replace(":", "_"))
        engine.docker("push", f"{upstream.host}/{name}")
        engine.docker("rmi", f"{upstream.host}/{name}")
    pinned = httpx.head(
        f"{upstream.url}/v2/azureml/pinned/manifests/1.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    ).headers["docker-content-digest"]
    work = tmp / "airlock"
    (work / "allowlists").mkdir(parents=True)
    (work / "allowlists" / "containers.yaml").write_text(CONTAINERS_YAML.format(url=upstream.url, pinned=pinned))
    airlock = AirlockProcess(
        work,
        {
            "AIRLOCK_DATA_DIR": str(work / "data"),
            "AIRLOCK_ALLOWLISTS": str(work / "allowlists"),
            "AIRLOCK_PYPI_UPSTREAM": f"{upstream.url}/simple/",
        },
    ).start()
    world = {
        "engine": engine,
        "upstream": upstream,
        "airlock": airlock,
        "host": f"127.0.0.1:{airlock.port}",
        "pinned": pinned,
    }
    yield world
    airlock.stop()
    upstream.stop()


def pull(world, reference):
    return world["engine"].docker("pull", f"{world['host']}/{reference}", check=False)


def test_docker_pulls_an_allowlisted_tag(registry_world):
    result = pull(registry_world, f"prod/mar/{IMAGE}:20240501")
    assert result.returncode == 0, result.stderr
    run = registry_world["engine"].docker(
        "run",
        "--rm",
        "--network",
        "none",
        f"{registry_world['host']}/prod/mar/{IMAGE}:20240501",
        "/bin/busybox",
        "cat",
        "/data/layer2.txt",
    )
    assert run.stdout == "training libraries"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (f"prod/mar/{IMAGE}:2023", "matches none of the entry's tag globs (tags 2024*)"),
        ("prod/mar/azureml/unlisted:latest", "mar/azureml/unlisted is not on the prod allowlist"),
        ("prod/dockerhub/library/python:3.11", "unknown upstream 'dockerhub'"),
    ],
)
def test_docker_prints_airlocks_reason_for_a_refusal(registry_world, reference, message):
    result = pull(registry_world, reference)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_pinned_digest_pulls_and_an_unpinned_one_does_not(registry_world):
    assert pull(registry_world, f"prod/mar/azureml/pinned@{registry_world['pinned']}").returncode == 0
    assert pull(registry_world, "prod/mar/azureml/pinned:1.0").returncode != 0
    upstream = registry_world["upstream"]
    other = httpx.head(
        f"{upstream.url}/v2/{IMAGE}/manifests/2023",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    ).headers["docker-content-digest"]
    result = pull(registry_world, f"prod/mar/{IMAGE}@{other}")
    assert result.returncode != 0 and "is not pinned by the entry" in result.stderr


def test_blobs_of_a_blocked_image_are_refused_and_pushes_too(registry_world):
    upstream = registry_world["upstream"]
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    manifest = httpx.get(f"{upstream.url}/v2/{IMAGE}/manifests/2023", headers=accept).json()
    allowed = httpx.get(f"{upstream.url}/v2/{IMAGE}/manifests/20240501", headers=accept).json()
    # Layers both images share (the busybox layer, when the engine's build cache reuses it) are
    # rightly served for the allowed image; the blocked image's own layers must not be.
    own = [layer for layer in manifest["layers"] if layer["digest"] not in {a["digest"] for a in allowed["layers"]}]
    assert len(own) >= 2
    base = f"http://{registry_world['host']}/v2/prod/mar/{IMAGE}"
    for layer in own:
        response = httpx.get(f"{base}/blobs/{layer['digest']}")
        assert response.status_code == 403
        assert response.json()["errors"][0]["code"] == "DENIED"
        assert response.headers["X-Airlock-Reason"].startswith("Airlock: blob")
    push = httpx.post(f"{base}/blobs/uploads/")
    assert push.status_code == 403 and "pushes and deletes are refused" in push.json()["errors"][0]["message"]


def test_an_allowlist_change_takes_effect_on_the_next_pull(registry_world, tmp_path):
    allowlist = registry_world["airlock"].workdir / "allowlists" / "containers.yaml"
    original = allowlist.read_text()
    reference = f"prod/mar/{IMAGE}:20240501"
    try:
        allowlist.write_text(original.replace('tags: ["2024*"]', 'tags: ["2025*"]'))
        import time

        time.sleep(1.5)
        registry_world["engine"].docker("rmi", f"{registry_world['host']}/{reference}", check=False)
        result = pull(registry_world, reference)
        assert result.returncode != 0 and "matches none of the entry's tag globs (tags 2025*)" in result.stderr
    finally:
        allowlist.write_text(original)
        time.sleep(1.5)
    assert pull(registry_world, reference).returncode == 0


def test_upstream_down_cached_images_still_pull(registry_world):
    reference = f"prod/mar/{IMAGE}:20240501"
    assert pull(registry_world, reference).returncode == 0
    registry_world["engine"].docker("rmi", f"{registry_world['host']}/{reference}")
    registry_world["upstream"].stop()
    try:
        result = pull(registry_world, reference)
        assert result.returncode == 0, result.stderr
        never_cached = pull(registry_world, f"prod/mar/{IMAGE}:20240601")
        assert never_cached.returncode != 0
        # 503, never a misleading "manifest unknown"; docker shows only the status for it (the
        # reason is in the body, the X-Airlock-Reason header and the service log)
        assert "503 Service Unavailable" in never_cached.stderr
        direct = httpx.get(f"http://{registry_world['host']}/v2/prod/mar/{IMAGE}/manifests/20240601")
        assert direct.status_code == 503
        assert "the upstream registry mar is unreachable" in direct.json()["errors"][0]["message"]
    finally:
        registry_world["upstream"].start()


def test_sync_containers_prepulls_so_images_survive_an_upstream_outage(registry_world):
    # Runs after test_upstream_down_…, which needs 20240601 never to have been pulled.
    import subprocess
    import sys

    airlock = registry_world["airlock"]
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "sync", "containers", "--env", "prod"],
        capture_output=True,
        text=True,
        cwd=airlock.workdir,
        env={**os.environ, **airlock.env, "AIRLOCK_LISTEN": registry_world["host"]},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    cached = sorted(line.split()[1] for line in result.stdout.splitlines())
    assert cached == sorted(
        [
            f"prod/mar/azureml/pinned@{registry_world['pinned']}",
            f"prod/mar/{IMAGE}:20240501",
            f"prod/mar/{IMAGE}:20240601",
        ]
    )
    registry_world["upstream"].stop()
    try:
        result = pull(registry_world, f"prod/mar/{IMAGE}:20240601")
        assert result.returncode == 0, result.stderr
    finally:
        registry_world["upstream"].start()


def test_an_upstream_whose_cache_could_not_start_is_503_then_recovers(tmp_path):
    # docker-registry exits at start when its upstream does not answer: nothing listens there yet.
    upstream = Registry(tmp_path / "late-upstream")
    work = tmp_path / "airlock"
    (work / "allowlists").mkdir(parents=True)
    (work / "allowlists" / "containers.yaml").write_text(
        CONTAINERS_YAML.format(url=upstream.url, pinned="sha256:" + "0" * 64)
    )
    airlock = AirlockProcess(
        work,
        {
            "AIRLOCK_DATA_DIR": str(work / "data"),
            "AIRLOCK_ALLOWLISTS": str(work / "allowlists"),
            "AIRLOCK_PYPI_UPSTREAM": "http://127.0.0.1:9/simple/",
            "AIRLOCK_REGISTRY_RETRY_SECONDS": "1",
        },
    ).start()
    try:
        response = httpx.get(f"{airlock.url}/v2/prod/mar/{IMAGE}/manifests/20240501")
        assert response.status_code == 503
        assert "the registry cache for mar is not running" in response.json()["errors"][0]["message"]
        assert httpx.get(f"{airlock.url}/v2/prod/other/{IMAGE}/manifests/20240501").status_code == 404
        ready = httpx.get(f"{airlock.url}/readyz").json()
        assert ready["ready"] is True and ready["degraded"] == ["registry-mar"]  # PyPI and the API still serve
        upstream.start()  # the upstream comes back: the cache starts without restarting Airlock
        try:
            deadline = time.monotonic() + 30
            while httpx.get(f"{airlock.url}/readyz").json()["degraded"] and time.monotonic() < deadline:
                time.sleep(0.5)
            assert httpx.get(f"{airlock.url}/readyz").json()["degraded"] == []
            recovered = httpx.get(f"{airlock.url}/v2/prod/mar/{IMAGE}/manifests/20240501")
            assert recovered.status_code != 503  # now the (empty) upstream answers: unknown manifest
        finally:
            upstream.stop()
    finally:
        airlock.stop()
