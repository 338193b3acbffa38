"""With `--server`, the gate reads allowed base images through Airlock's registry proxy: a CI runner
in a locked-down network reaches Airlock and nothing else. Real parts: the engine, Debian's registry
as the upstream, Airlock (`airlock up`, tokens required) with its registry cache, the real gate."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from testkit.servers import AirlockProcess, free_port
from testkit.worlds import mint_token
from tests.gate_world import gate, image


@pytest.fixture(scope="module")
def airlock(tmp_path_factory, gate_world, base_images):
    """Airlock serving the gate world's registry as upstream `local`, with the same allowlists."""
    work = tmp_path_factory.mktemp("gate-bases")
    shutil.copytree(base_images["allowlists"], work / "allowlists")
    server = AirlockProcess(
        work,
        {
            "AIRLOCK_DATA_DIR": str(work / "data"),
            "AIRLOCK_ALLOWLISTS": str(work / "allowlists"),
            "AIRLOCK_PYPI_UPSTREAM": f"{gate_world['registry'].url}/simple/",
            "AIRLOCK_REQUIRE_TOKEN": "true",
        },
    ).start()
    database = f"sqlite:///{work / 'data' / 'airlock.db'}"
    yield {
        "url": server.url,
        "cicd": mint_token(database, "cicd-process", "pipeline"),
        "requester": mint_token(database, "data-scientist", "ana"),
        "lead": mint_token(database, "project-lead", "lee"),
    }
    server.stop()


@pytest.fixture
def cut_off(base_images, tmp_path):
    """The runner's allowlists, whose upstream registry it cannot reach (nothing listens there)."""
    folder = tmp_path / "allowlists"
    shutil.copytree(base_images["allowlists"], folder)
    containers = folder / "containers.yaml"
    containers.write_text(
        containers.read_text().replace(base_images["upstream_url"], f"http://127.0.0.1:{free_port()}")
    )
    return folder


def through_airlock(world, airlock, reference: str, allowlists, *args: str):
    return gate(
        world,
        reference,
        "--env",
        "prod",
        "--server",
        airlock["url"],
        *args,
        allowlists=allowlists,
        env={"AIRLOCK_TOKEN": airlock["cicd"]},
    )


def test_a_runner_that_reaches_only_airlock_checks_the_base_through_it(gate_world, base_images, airlock, cut_off):
    ref = image(gate_world, "app/base-via-airlock:1", packages=[("goodlib", "2.1.0")], base=base_images["allowed"])
    direct = gate(gate_world, ref, "--env", "prod", allowlists=cut_off)
    assert direct.returncode == 2 and "registry unreachable" in direct.stderr
    result = through_airlock(gate_world, airlock, ref, cut_off, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    [base] = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "base-image"]
    assert (
        base["level"] == "info" and "local/base/minimal:1.0" in base["reason"] and "containers.yaml:6" in base["reason"]
    )


def test_through_airlock_another_base_fails_until_an_exception_admits_it(gate_world, base_images, airlock, cut_off):
    build = lambda: image(
        gate_world, "app/other-base-via-airlock:1", packages=[("goodlib", "2.1.0")], base=base_images["other"]
    )
    refused = through_airlock(gate_world, airlock, build(), cut_off)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        "not built on an allowed base image" in refused.stdout and "allowed: local/base/minimal:1.0" in refused.stdout
    )

    asked = httpx.post(
        f"{airlock['url']}/api/v1/exceptions",
        headers={"Authorization": f"Bearer {airlock['requester']}"},
        json={
            "ecosystem": "containers",
            "package": "local/other/base",
            "versions": "1.0",
            "environments": ["prod"],
            "project": "churn-model",
            "justification": "the GPU base image our training code is validated on",
            "duration_days": 30,
        },
    )
    assert asked.status_code == 201, asked.text
    approved = httpx.post(
        f"{airlock['url']}/api/v1/exceptions/{asked.json()['id']}/approve",
        headers={"Authorization": f"Bearer {airlock['lead']}"},
        json={"comment": "validated base, for 30 days"},
    )
    assert approved.status_code == 200, approved.text
    admitted = through_airlock(gate_world, airlock, build(), cut_off, "--format", "json")
    assert admitted.returncode == 0, admitted.stdout + admitted.stderr
    [base] = [f for f in json.loads(admitted.stdout)["findings"] if f["check"] == "base-image"]
    assert "local/other/base:1.0" in base["reason"] and f"exception {asked.json()['id']}" in base["reason"]


def test_airlock_lists_only_the_tags_an_environment_allows(gate_world, base_images, airlock):
    registry = gate_world["registry"]
    gate_world["engine"].docker("tag", base_images["allowed"], f"{registry.host}/base/minimal:2.0")
    gate_world["engine"].docker("push", f"{registry.host}/base/minimal:2.0")
    assert set(httpx.get(f"{registry.url}/v2/base/minimal/tags/list").json()["tags"]) == {"1.0", "2.0"}
    bearer = {"Authorization": f"Bearer {airlock['cicd']}"}
    listed = httpx.get(f"{airlock['url']}/v2/prod/local/base/minimal/tags/list", headers=bearer)
    assert listed.status_code == 200 and listed.json() == {"name": "prod/local/base/minimal", "tags": ["1.0"]}
    assert httpx.get(f"{airlock['url']}/v2/prod/local/base/minimal/tags/list").status_code == 401
    unknown = httpx.get(f"{airlock['url']}/v2/staging/local/base/minimal/tags/list", headers=bearer)
    assert unknown.status_code == 404 and "unknown environment 'staging'" in unknown.json()["errors"][0]["message"]


def test_an_upstream_the_server_does_not_have_cannot_be_decided(gate_world, base_images, airlock, cut_off):
    containers = cut_off / "containers.yaml"
    containers.write_text(
        containers.read_text().replace("  local:", "  elsewhere:").replace("image: local/", "image: elsewhere/")
    )
    ref = image(gate_world, "app/base-via-airlock:1", packages=[("goodlib", "2.1.0")], base=base_images["allowed"])
    result = through_airlock(gate_world, airlock, ref, cut_off)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "reading the allowed base images through Airlock (--server): registry answered HTTP 404" in result.stderr
    assert "unknown upstream 'elsewhere'; configured in allowlists/containers.yaml: local" in result.stderr


def test_a_pipeline_logs_in_with_its_cicd_token_and_pulls_its_base(gate_world, airlock):
    """AIRLOCK_REQUIRE_TOKEN=true: the pipeline's docker build pulls its base through Airlock with the same token."""
    engine, host = gate_world["engine"], airlock["url"].removeprefix("http://")
    reference = f"{host}/prod/local/base/minimal:1.0"
    refused = engine.docker("pull", reference, check=False)
    assert refused.returncode != 0 and "no basic auth credentials" in refused.stderr
    engine.docker("login", host, "--username", "pipeline", "--password", airlock["cicd"])
    try:
        pulled = engine.docker("pull", reference, check=False)
        assert pulled.returncode == 0, pulled.stderr
    finally:
        engine.docker("logout", host, check=False)
        engine.docker("rmi", reference, check=False)
