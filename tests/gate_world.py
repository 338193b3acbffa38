"""The gate's test world: a Trivy DB built by `airlock-gate db build` from OSV advisories, a real
registry, allowlists, and the helpers every gate test uses (shared by test_gate*.py through the
session-scoped `gate_world` fixture in conftest)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from testkit.docker import Registry
from testkit.images import build_image, osv
from testkit.worlds import BIN

PYPI_YAML = """\
ecosystem: pypi
environments: {prod: {}, preprod: {extends: prod}}
packages:
  - {name: goodlib, versions: ">=2,<3", environments: [prod], reason: core numerics, owner: ml}
  - {name: vulnlib, environments: [prod], reason: parser, owner: ml}
  - {name: prelib, environments: [preprod], reason: experiments only, owner: ml}
"""
GATE_YAML = """\
environments:
  prod: {fail_on: [HIGH, CRITICAL], secrets: fail, max_db_age: 24h}
  preprod: {fail_on: [CRITICAL], secrets: fail, max_db_age: 72h}
"""
CONTAINERS_YAML = """\
ecosystem: containers
environments: {{prod: {{}}, preprod: {{extends: prod}}}}
upstreams:
  local: {{url: {url}}}
images:
  - {{image: local/base/minimal, tags: ["1.*"], environments: [prod], reason: vetted base, owner: platform}}
"""
ADVISORIES = [
    osv(
        "GHSA-vuln-lib0-0001",
        "vulnlib",
        "1.1",
        "HIGH",
        cve="CVE-2026-1111",
        summary="vulnlib before 1.1 executes pickles",
    ),
    osv("GHSA-good-lib0-0002", "goodlib", "1.5", "CRITICAL", cve="CVE-2026-2222"),  # 2.x is fixed
    osv("PYSEC-2026-3", "prelib", "0.5", "LOW"),
]


def make_gate_world(tmp: Path, docker_engine):
    """Yields the world; the registry stops when the generator is closed."""
    advisories = tmp / "advisories"
    advisories.mkdir()
    for document in ADVISORIES:
        (advisories / f"{document['id']}.json").write_text(json.dumps(document))
    built = subprocess.run(
        [str(BIN / "airlock-gate"), "db", "build", "--advisories", str(advisories), "--out", str(tmp / "db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    registry = Registry(tmp / "registry").start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    (allowlists / "gate.yaml").write_text(GATE_YAML)
    world = {
        "tmp": tmp,
        "engine": docker_engine,
        "registry": registry,
        "db": tmp / "db",
        "allowlists": allowlists,
        "data": tmp / "data",
        "advisories": advisories,
        "build_output": built.stdout,
    }
    yield world
    registry.stop()


def make_base_images(world) -> dict:
    """Base images in the world's registry: one allowed by containers.yaml (with a package of its
    own), one not; and an allowlist folder with that containers.yaml."""
    registry = world["registry"]
    allowed = image(world, f"{registry.host}/base/minimal:1.0", packages=[("basepkg", "3.0")])
    other = image(world, f"{registry.host}/other/base:1.0", files={"/etc/os-release": "NAME=other\n"})
    for ref in (allowed, other):
        world["engine"].docker("push", ref)
    folder = world["tmp"] / "allowlists-with-bases"
    folder.mkdir()
    for name in ("pypi.yaml", "gate.yaml"):
        (folder / name).write_text((world["allowlists"] / name).read_text())
    (folder / "containers.yaml").write_text(CONTAINERS_YAML.format(url=registry.url))
    return {"allowed": allowed, "other": other, "allowlists": folder, "upstream_url": registry.url}


def gate(
    world, *args: str, allowlists: Path | None = None, env: dict | None = None, db: Path | None = None
) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "airlock-gate"),
        "scan",
        *args,
        "--allowlists",
        str(allowlists or world["allowlists"]),
        "--db",
        str(db or world["db"]),
    ]
    environment = {**world["engine"].env, "AIRLOCK_DATA_DIR": str(world["data"]), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def image(world, name: str, **kwargs) -> str:
    return build_image(
        world["engine"], name, world["tmp"] / "contexts" / name.replace("/", "_").replace(":", "_"), **kwargs
    )


def exists(world, reference: str) -> bool:
    return world["engine"].docker("image", "inspect", reference, check=False).returncode == 0


def last_audit(world) -> dict:
    exported = subprocess.run(
        [str(BIN / "airlock"), "audit", "export", "--format", "jsonl"],
        capture_output=True,
        text=True,
        env={**world["engine"].env, "AIRLOCK_DATA_DIR": str(world["data"])},
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    return json.loads(exported.stdout.strip().splitlines()[-1])
