"""Shared fixtures. Each builds real artefacts (files, servers) the way a user would have them."""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mirror.policy import Allowlist, build_allowlist, load_policy_files

REPO_ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def allowlist_from(*documents: tuple[str, str], grants=(), now: datetime = NOW) -> Allowlist:
    """Build an allowlist from `(file name, YAML text)` pairs written inline in a test."""
    sources = [(name, textwrap.dedent(text)) for name, text in documents]
    return build_allowlist(load_policy_files(sources, now), grants, now)


@pytest.fixture
def write_allowlists(tmp_path: Path):
    """Write `{file name: YAML text}` into a fresh allowlists folder and return the folder."""

    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "allowlists"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(textwrap.dedent(text))
        return folder

    return write


@pytest.fixture(scope="session")
def pypi_world(tmp_path_factory):
    """An upstream index with real wheels and sdists, and `airlock up` in front of it (shared)."""
    from testkit.worlds import start_pypi_world

    world = start_pypi_world(tmp_path_factory.mktemp("pypi-world"))
    yield world
    world.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api_world(request, tmp_path_factory):
    """Airlock with its exception API on each database backend (shared per backend)."""
    from testkit.worlds import start_api_world

    world = start_api_world(tmp_path_factory.mktemp(f"api-{request.param}"), request.param)
    yield world
    world.stop()


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """One real Docker engine (vfs storage, no iptables) for every container and gate test."""
    from testkit.docker import DockerEngine

    engine = DockerEngine(tmp_path_factory.mktemp("docker")).start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def gate_world(tmp_path_factory, docker_engine):
    """The gate's DB, registry and allowlists (tests/gate_world.py), shared by every gate test module."""
    from tests.gate_world import make_gate_world

    yield from make_gate_world(tmp_path_factory.mktemp("gate"), docker_engine)


@pytest.fixture(scope="session")
def base_images(gate_world):
    """An allowed and another base image in the gate world's registry (tests/gate_world.py)."""
    from tests.gate_world import make_base_images

    return make_base_images(gate_world)


SCHEMAS = Path(sys.prefix) / "share" / "airlock"


def installed_schema(name: str) -> dict:
    """A JSON schema scripts/test installed from npm (tests have no internet)."""
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/test, which installs it")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def sarif_schema() -> dict:
    """The official SARIF 2.1.0 schema (OASIS, rtm.5)."""
    return installed_schema("sarif-schema-2.1.0.json")
