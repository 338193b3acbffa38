"""compose.yaml with real parts: Airlock built from the repo's Dockerfile (wheels built here) and
PostgreSQL from Debian's package, both on a Debian base made with debootstrap (no registry is
reachable), brought up with docker-compose v1 and the `replicas` profile (a second replica and HAProxy);
pip installs through the containerised Airlock, and through the balancer with either replica stopped."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time

import httpx
import pytest

from testkit.pypi import Release, Upstream
from testkit.servers import free_port
from testkit.worlds import fresh_venv, installed, pip, quarantined
from tests.conftest import REPO_ROOT

BASE = "airlock-test/debian:bookworm"
PYPI_YAML = """\
ecosystem: pypi
environments: {prod: {}, preprod: {extends: prod}}
packages:
  - {name: alpha, environments: [prod], reason: core, owner: ml}
"""


def compose(world, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [
        "docker-compose",
        "-p",
        world["project"],
        "-f",
        str(REPO_ROOT / "compose.yaml"),
        "-f",
        str(REPO_ROOT / "tests" / "compose" / "upstream.yaml"),
        "--project-directory",
        str(world["dir"]),
        "--profile",
        "replicas",
        *args,
    ]
    result = subprocess.run(command, env=world["env"], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def debian_base(engine, tmp) -> None:
    if engine.docker("image", "inspect", BASE, check=False).returncode == 0:
        return
    rootfs = tmp / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "import", "-", BASE], stdin=tar.stdout, env=engine.env, check=True, capture_output=True, timeout=600
    )
    tar.wait()
    shutil.rmtree(rootfs)


@pytest.fixture(scope="module")
def compose_world(tmp_path_factory, docker_engine):
    tmp = tmp_path_factory.mktemp("compose")
    engine = docker_engine
    debian_base(engine, tmp)
    built = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-image"), "airlock-test/airlock:1", BASE],
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    for tag, folder in (("airlock-test/postgres:15", "postgres"), ("airlock-test/haproxy:2.6", "haproxy")):
        # Stand-ins for the official images, from Debian packages (apt needs the host's network).
        engine.docker(
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "-t",
            tag,
            str(REPO_ROOT / "tests" / "compose" / folder),
            timeout=1800,
        )
    engine.build("airlock-test/busybox:1", [], tmp / "busybox")
    upstream = Upstream(tmp / "upstream")
    upstream.add(Release("alpha", "1.0"), Release("beta", "1.0"))
    upstream.publish()
    project = tmp / "project"
    (project / "allowlists").mkdir(parents=True)
    (project / "allowlists" / "pypi.yaml").write_text(PYPI_YAML)
    (project / "deploy" / "haproxy").mkdir(parents=True)  # a checkout of this repository, as a site has
    shutil.copy(REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg", project / "deploy" / "haproxy")
    (project / "secrets").mkdir()
    (project / "secrets" / "db_password").write_text(secrets.token_hex(16))
    (project / "secrets" / "db_password").chmod(0o444)
    port, balancer_port = free_port(), free_port()
    env = {
        **engine.env,
        "AIRLOCK_IMAGE": "airlock-test/airlock:1",
        "AIRLOCK_POSTGRES_IMAGE": "airlock-test/postgres:15",
        "AIRLOCK_PORT": str(port),
        "AIRLOCK_BALANCER_PORT": str(balancer_port),
        "AIRLOCK_BALANCER_IMAGE": "airlock-test/haproxy:2.6",
        "AIRLOCK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "AIRLOCK_PYPI_UPSTREAM": "http://upstream:8080/simple/",
        "TEST_UPSTREAM_IMAGE": "airlock-test/busybox:1",
        "TEST_UPSTREAM_DIR": str(upstream.root),
    }
    world = {
        "dir": project,
        "env": env,
        "project": f"airlock{port}",
        "url": f"http://127.0.0.1:{port}",
        "balancer": f"http://127.0.0.1:{balancer_port}",
        "engine": engine,
    }
    compose(world, "up", "-d")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if all(httpx.get(f"{world[u]}/readyz", timeout=5).status_code == 200 for u in ("url", "balancer")):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise AssertionError(
                "Airlock in compose never became ready:\n" + compose(world, "logs", "--tail", "50", check=False).stdout
            )
        yield world
    finally:
        compose(world, "down", "-v", check=False)


def test_compose_file_is_valid_and_holds_no_secret():
    import jsonschema
    import yaml

    from tests.conftest import installed_schema

    text = (REPO_ROOT / "compose.yaml").read_text()
    # Compose v2 reads the Compose Specification: validate against its schema (v2 does not run here)...
    spec = installed_schema("compose-spec.json")
    problems = [error.message for error in jsonschema.Draft201909Validator(spec).iter_errors(yaml.safe_load(text))]
    assert problems == []
    # ...and v1.29 must accept and resolve it.
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO_ROOT / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "AIRLOCK_PORT": "8000"},
    )
    assert result.returncode == 0, result.stderr
    assert "POSTGRES_PASSWORD:" not in text and "PASSWORD_FILE: /run/secrets/db_password" in text
    assert "secrets/" in (REPO_ROOT / ".gitignore").read_text()


def test_pip_installs_through_the_containerised_airlock(compose_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    index = f"{compose_world['url']}/pypi/prod/simple/"
    result = pip(["--python", str(python), "install", "--index-url", index, "alpha"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(python) == {"alpha": "1.0"}
    blocked = pip(["--python", str(python), "install", "--index-url", index, "beta"], tmp_path)
    assert blocked.returncode != 0
    page = httpx.get(f"{index}beta/")
    assert quarantined(page) and "beta is not on the prod allowlist" in page.headers["X-Airlock-Reason"]


def health(world, *services: str) -> dict[str, str]:
    """Docker's health status of each container of `services` (all when none named) that has a check."""
    ids = compose(world, "ps", "-q", *services).stdout.split()
    inspected = json.loads(world["engine"].docker("inspect", *ids).stdout)
    return {c["Name"]: c["State"]["Health"]["Status"] for c in inspected if c["State"].get("Health")}


def until_healthy(world, *services: str, count: int, timeout: float = 120) -> None:
    """Wait until `count` containers of `services` report healthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sorted(health(world, *services).values()) == ["healthy"] * count:
            return
        time.sleep(2)
    states = health(world, *services)
    assert sorted(states.values()) == ["healthy"] * count, states


def test_every_service_is_healthy(compose_world):
    until_healthy(compose_world, count=3)  # db and both replicas


def test_airlock_in_compose_keeps_its_state_in_postgresql(compose_world):
    token = compose(
        compose_world, "exec", "-T", "airlock", "airlock", "token", "create", "--user", "ci", "--role", "cicd-process"
    ).stdout.strip()
    assert token.startswith("alk_")
    answer = httpx.get(
        f"{compose_world['url']}/api/v1/allowlists/pypi/prod", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200 and [r["name"] for r in answer.json()["rules"]] == ["alpha"]
    rows = compose(
        compose_world,
        "exec",
        "-T",
        "db",
        "psql",
        "-U",
        "airlock",
        "-d",
        "airlock",
        "-tAc",
        "select count(*) from audit_records where action = 'token.created'",
    ).stdout.strip()
    assert int(rows) >= 1
    logs = compose(compose_world, "logs", "airlock").stdout
    password = (compose_world["dir"] / "secrets" / "db_password").read_text()
    assert password not in logs


def test_the_balancer_serves_installs_with_either_replica_stopped(compose_world, tmp_path):
    index = f"{compose_world['balancer']}/pypi/prod/simple/"
    for stopped in ("airlock", "airlock-2"):
        compose(compose_world, "stop", stopped)
        try:
            python = fresh_venv(tmp_path / f"venv-{stopped}")
            result = pip(["--python", str(python), "install", "--index-url", index, "alpha"], tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            assert installed(python) == {"alpha": "1.0"}
            page = httpx.get(f"{index}beta/")  # the other replica enforces the same allowlist
            assert quarantined(page)
        finally:
            compose(compose_world, "start", stopped)
        until_healthy(compose_world, stopped, count=1)  # back in the balancer before the other one stops
        assert httpx.get(f"{compose_world['balancer']}/readyz", timeout=5).status_code == 200
