"""The deployment gate on real images: real engine, real registry, real Trivy with a DB built from
OSV advisories by `airlock-gate db build`, the real `airlock-gate` command."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.upstream.docker import Registry
from tests.conftest import REPO_ROOT
from tests.upstream.images import CLOUD_TOKENS, PRIVATE_KEY, SITE, build_image, dist_info, oci_archive, osv
from tests.upstream.servers import free_port
from tests.worlds import BIN

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
    osv("GHSA-vuln-lib0-0001", "vulnlib", "1.1", "HIGH", cve="CVE-2026-1111", summary="vulnlib before 1.1 executes pickles"),
    osv("GHSA-good-lib0-0002", "goodlib", "1.5", "CRITICAL", cve="CVE-2026-2222"),  # 2.x is fixed
    osv("PYSEC-2026-3", "prelib", "0.5", "LOW"),
]


@pytest.fixture(scope="module")
def gate_world(tmp_path_factory, docker_engine):
    tmp = tmp_path_factory.mktemp("gate")
    advisories = tmp / "advisories"
    advisories.mkdir()
    for document in ADVISORIES:
        (advisories / f"{document['id']}.json").write_text(json.dumps(document))
    built = subprocess.run([str(BIN / "airlock-gate"), "db", "build", "--advisories", str(advisories), "--out", str(tmp / "db")],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    registry = Registry(tmp / "registry").start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    (allowlists / "gate.yaml").write_text(GATE_YAML)
    world = {"tmp": tmp, "engine": docker_engine, "registry": registry, "db": tmp / "db", "allowlists": allowlists,
             "data": tmp / "data", "advisories": advisories, "build_output": built.stdout}
    yield world
    registry.stop()


def gate(world, *args: str, allowlists: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(BIN / "airlock-gate"), "scan", *args, "--allowlists", str(allowlists or world["allowlists"]), "--db", str(world["db"])]
    environment = {**world["engine"].env, "AIRLOCK_DATA_DIR": str(world["data"]), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def image(world, name: str, **kwargs) -> str:
    return build_image(world["engine"], name, world["tmp"] / "contexts" / name.replace("/", "_").replace(":", "_"), **kwargs)


def exists(world, reference: str) -> bool:
    return world["engine"].docker("image", "inspect", reference, check=False).returncode == 0


def last_audit(world) -> dict:
    exported = subprocess.run([str(BIN / "airlock"), "audit", "export", "--format", "jsonl"], capture_output=True, text=True,
                              env={**world["engine"].env, "AIRLOCK_DATA_DIR": str(world["data"])}, timeout=60)
    assert exported.returncode == 0, exported.stderr
    return json.loads(exported.stdout.strip().splitlines()[-1])


def test_db_build_reports_what_it_wrote(gate_world):
    assert "3 advisories for 3 packages" in gate_world["build_output"]
    metadata = json.loads((gate_world["db"] / "db" / "metadata.json").read_text())
    assert metadata["Version"] == 2 and metadata["UpdatedAt"]


def test_clean_image_passes_and_stays(gate_world, tmp_path):
    ref = image(gate_world, "app/clean:1", packages=[("goodlib", "2.1.0")])
    result = gate(gate_world, ref, "--env", "prod", "--format", "json", "--report", str(tmp_path / "gate.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["decision"] == "pass" and report["exit_code"] == 0 and report["digest"].startswith("sha256:")
    provenance = [f for f in report["findings"] if f["check"] == "provenance"]
    assert len(provenance) == 1 and provenance[0]["level"] == "info" and provenance[0]["package"] == "goodlib"
    assert "allowed by" in provenance[0]["reason"] and "pypi.yaml:4" in provenance[0]["reason"]
    assert exists(gate_world, ref)
    sbom = json.loads((tmp_path / "gate.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and any(c["name"] == "goodlib" for c in sbom["components"])
    record = last_audit(gate_world)
    assert record["action"] == "gate.decision" and record["details"]["decision"] == "pass"
    assert record["details"]["image_id"] == report["image_id"]


def test_vulnerable_version_fails_is_discarded_and_audited(gate_world):
    ref = image(gate_world, "app/vulnerable:1", packages=[("vulnlib", "1.0")])
    result = gate(gate_world, ref, "--env", "prod")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL app/vulnerable:1 for prod" in result.stdout
    assert "CVE-2026-1111" in result.stdout and "upgrade vulnlib to 1.1" in result.stdout
    assert "the image was discarded and must not be deployed" in result.stderr
    assert not exists(gate_world, ref)
    record = last_audit(gate_world)["details"]
    assert record["decision"] == "fail" and record["discarded"] == [f"engine:{ref}"]
    assert record["digest"].startswith("sha256:") and record["ci"]["system"] == "local"
    [vuln] = [f for f in record["findings"] if f["check"] == "vulnerabilities"]
    assert vuln["id"] == "CVE-2026-1111" and vuln["severity"] == "HIGH" and vuln["level"] == "fail"
    verify = subprocess.run([str(BIN / "airlock"), "audit", "verify"], capture_output=True, text=True,
                            env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])})
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_secrets_fail_without_printing_them(gate_world):
    ref = image(gate_world, "app/leaky:1", packages=[("goodlib", "2.1.0")],
                files={"/app/deploy_key.pem": PRIVATE_KEY, "/app/settings.py": CLOUD_TOKENS})
    result = gate(gate_world, ref, "--env", "prod", "--format", "json")
    assert result.returncode == 1, result.stderr
    found = {f["id"]: f for f in json.loads(result.stdout)["findings"] if f["check"] == "secrets"}
    assert {"private-key", "aws-access-key-id", "github-pat"} <= set(found), found
    assert found["private-key"]["path"] == "/app/deploy_key.pem:2" and found["private-key"]["level"] == "fail"
    for secret in ("AKIAZ3MSJV4WRSZWQFVG", "ghp_R8sJq2LmV5wX1tY7uZ3aB9cD4eF6gH0iK2Lm", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO"):
        assert secret not in result.stdout + result.stderr
        assert secret not in json.dumps(last_audit(gate_world))
    assert not exists(gate_world, ref)


def test_preprod_only_package_passes_preprod_and_fails_prod(gate_world):
    ref = image(gate_world, "app/experiment:1", packages=[("prelib", "0.9")])
    preprod = gate(gate_world, ref, "--env", "preprod")
    assert preprod.returncode == 0, preprod.stdout + preprod.stderr
    prod = gate(gate_world, ref, "--env", "prod")
    assert prod.returncode == 1
    assert "blocked: prelib is not on the prod allowlist" in prod.stdout
    assert '"package": "prelib", "versions": "==0.9", "environments": ["prod"]' in prod.stdout  # how to ask


def _waivers(tmp: Path, expires: date) -> Path:
    path = tmp / "waivers.yaml"
    path.write_text(f"waivers:\n  - id: CVE-2026-1111\n    package: vulnlib\n    versions: \"<1.1\"\n    environments: [prod]\n"
                    f"    reason: parser not reachable from the scoring path\n    approved_by: data-governance/jane\n    expires: {expires}\n")
    return path


def test_waiver_passes_and_expired_waiver_fails(gate_world, tmp_path):
    ref = image(gate_world, "app/waived:1", packages=[("vulnlib", "1.0")])
    archive = tmp_path / "waived.tar"
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    waived = gate(gate_world, "--input", str(archive), "--env", "prod", "--waivers", str(_waivers(tmp_path, date.today() + timedelta(days=30))))
    assert waived.returncode == 0, waived.stdout + waived.stderr
    assert "waived: CVE-2026-1111 in vulnlib 1.0" in waived.stdout and "data-governance/jane" in waived.stdout
    expired = gate(gate_world, "--input", str(archive), "--env", "prod", "--waivers", str(_waivers(tmp_path, date.today() - timedelta(days=1))))
    assert expired.returncode == 1, expired.stdout + expired.stderr
    assert "expired on" in expired.stdout
    assert not archive.exists()  # the archive is the image: discarded


def test_sarif_report_validates_against_the_official_schema(gate_world, tmp_path, sarif_schema):
    import jsonschema

    ref = image(gate_world, "app/sarif:1", packages=[("vulnlib", "1.0"), ("prelib", "0.9")])
    result = gate(gate_world, ref, "--env", "prod", "--format", "sarif", "--report", str(tmp_path / "gate.sarif"))
    assert result.returncode == 1
    document = json.loads((tmp_path / "gate.sarif").read_text())
    assert document == json.loads(result.stdout)
    jsonschema.validate(document, sarif_schema)
    results = document["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"vulnerabilities", "provenance", "base-image"}
    # GitHub code scanning refuses the whole file when a result has no location ("expected at least one location").
    locations = {r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert locations["base-image"] == "Dockerfile"
    assert locations["provenance"].startswith("usr/local/lib/python3.11/site-packages/prelib-0.9.dist-info")


def _garbage_layer(archive: Path) -> None:
    """A docker-archive whose one layer is not a tar: the gate's own look passes it, Trivy fails on it."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    with tarfile.open(archive, "w") as out:
        for name, data in (("config.json", config.encode()), ("layer.tar", b"\x00not a layer" * 100),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(("corruption", "cause"), [
    ("not-a-tar", "the image archive {archive} is not a tar file: give a docker-archive (docker save IMAGE -o FILE) or an OCI archive or layout"),
    ("garbage-layer", "Trivy scan failed (exit 1): run error: image scan error: scan error: scan failed: failed analysis: analyze error: "
                      "pipeline error: failed to analyze layer (sha256:" + "0" * 64 + "): walk error: failed to extract the archive: "
                      "archive/tar: invalid tar header"),
])
def test_corrupt_archive_cannot_be_decided(gate_world, tmp_path, corruption, cause):
    archive = tmp_path / "corrupt.tar"
    if corruption == "not-a-tar":
        archive.write_bytes(b"\x00not a tar" * 1000)
    else:
        _garbage_layer(archive)
    result = gate(gate_world, "--input", str(archive), "--env", "prod")
    assert result.returncode == 2
    assert f"could not decide, the image must not be deployed: {cause.format(archive=archive)}\n" in result.stderr
    assert last_audit(gate_world)["details"]["decision"] == "undecided"


@pytest.mark.parametrize("form", ["oci-archive", "oci-layout"])
def test_oci_images_are_scanned_and_discarded_like_docker_archives(gate_world, tmp_path, form):
    ref = image(gate_world, "app/oci-vulnerable:1", packages=[("vulnlib", "1.0")])
    gate_world["engine"].docker("save", ref, "-o", str(tmp_path / "docker.tar"))
    given = oci_archive(tmp_path / "docker.tar", tmp_path / "oci.tar")
    if form == "oci-layout":
        with tarfile.open(given) as archive:
            archive.extractall(tmp_path / "layout", filter="data")
        given = tmp_path / "layout"
    result = gate(gate_world, "--input", str(given), "--env", "prod", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [f["title"] for f in report["findings"] if f["level"] == "fail"] == ["CVE-2026-1111 in vulnlib 1.0"]
    assert report["discarded"] == [f"archive:{given}"] and not given.exists()


@pytest.mark.parametrize("problem", ["missing-trivy", "missing-archive"])
def test_a_scan_that_cannot_start_is_undecided_and_audited(gate_world, tmp_path, problem):
    archive, options = tmp_path / "app.tar", []
    if problem == "missing-trivy":
        archive.write_bytes(b"")
        options = ["--trivy", str(tmp_path / "no-trivy")]
    result = gate(gate_world, "--input", str(archive), "--env", "prod", *options)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = (f"Trivy not found at {tmp_path / 'no-trivy'}: give the path of an executable trivy 0.76" if problem == "missing-trivy"
                else f"cannot read the image archive {archive}: give a docker-archive (docker save IMAGE -o FILE) or an OCI archive or layout")
    assert f"could not decide, the image must not be deployed: {expected}" in result.stderr
    record = last_audit(gate_world)["details"]
    assert (record["decision"], record["image"]) == ("undecided", str(archive)) and record["cause"].startswith(expected)


def test_killed_trivy_cannot_be_decided(gate_world, tmp_path):
    ref = image(gate_world, "app/killed:1", packages=[("goodlib", "2.1.0")])
    wrapper = tmp_path / "trivy"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec {BIN / "trivy"} "$@"\n{BIN / "trivy"} "$@" &\nsleep 0.3\nkill -9 $$\n')
    wrapper.chmod(0o755)
    result = gate(gate_world, ref, "--env", "prod", "--trivy", str(wrapper))
    assert result.returncode == 2
    assert "Trivy scan was killed by SIGKILL" in result.stderr
    assert exists(gate_world, ref)  # not judged, so not discarded; the pipeline simply does not deploy


def test_stale_or_missing_db_cannot_be_decided(gate_world, tmp_path):
    ref = image(gate_world, "app/stale:1", packages=[("goodlib", "2.1.0")])
    stale = tmp_path / "stale-db"
    subprocess.run(["cp", "-r", str(gate_world["db"]), str(stale)], check=True)
    metadata = json.loads((stale / "db" / "metadata.json").read_text())
    metadata["UpdatedAt"] = "2026-01-01T00:00:00.000000Z"
    (stale / "db" / "metadata.json").write_text(json.dumps(metadata))
    result = subprocess.run([str(BIN / "airlock-gate"), "scan", ref, "--env", "prod", "--allowlists", str(gate_world["allowlists"]),
                             "--db", str(stale)], capture_output=True, text=True, timeout=300,
                            env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])})
    assert result.returncode == 2
    assert "older than max_db_age 24.0 h in gate.yaml: rebuild it with `airlock-gate db build`" in result.stderr
    missing = subprocess.run([str(BIN / "airlock-gate"), "scan", ref, "--env", "prod", "--allowlists", str(gate_world["allowlists"]),
                              "--db", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=300,
                             env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])})
    assert missing.returncode == 2 and "no vulnerability DB in" in missing.stderr


def test_unreachable_engine_and_unknown_image_cannot_be_decided(gate_world):
    unreachable = gate(gate_world, "app/clean:1", "--env", "prod", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert unreachable.returncode == 2 and "Docker engine unreachable at unix:///nonexistent/docker.sock" in unreachable.stderr
    unknown = gate(gate_world, "app/never-built:1", "--env", "prod")
    assert unknown.returncode == 2 and "no image app/never-built:1 in the Docker engine" in unknown.stderr


def test_failed_registry_image_is_deleted_from_the_registry(gate_world):
    registry = gate_world["registry"]
    ref = image(gate_world, f"{registry.host}/team/model:1", packages=[("vulnlib", "1.0")])
    gate_world["engine"].docker("push", ref)
    gate_world["engine"].docker("rmi", ref)
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    digest = httpx.head(f"{registry.url}/v2/team/model/manifests/1", headers=accept).headers["docker-content-digest"]
    result = gate(gate_world, ref, "--env", "prod")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"registry:{registry.host}/team/model@{digest}" in result.stdout
    assert httpx.head(f"{registry.url}/v2/team/model/manifests/{digest}", headers=accept).status_code == 404
    assert not exists(gate_world, ref)
    assert last_audit(gate_world)["details"]["digest"] == digest


@pytest.fixture(scope="module")
def base_images(gate_world):
    """Base images in the local registry: one allowed by containers.yaml (with a package of its own), one not."""
    registry = gate_world["registry"]
    allowed = image(gate_world, f"{registry.host}/base/minimal:1.0", packages=[("basepkg", "3.0")])
    other = image(gate_world, f"{registry.host}/other/base:1.0", files={"/etc/os-release": "NAME=other\n"})
    for ref in (allowed, other):
        gate_world["engine"].docker("push", ref)
    folder = gate_world["tmp"] / "allowlists-with-bases"
    folder.mkdir()
    for name in ("pypi.yaml", "gate.yaml"):
        (folder / name).write_text((gate_world["allowlists"] / name).read_text())
    (folder / "containers.yaml").write_text(CONTAINERS_YAML.format(url=registry.url))
    return {"allowed": allowed, "other": other, "allowlists": folder}


def test_image_on_allowed_base_passes_and_base_packages_are_vetted_by_it(gate_world, base_images):
    ref = image(gate_world, "app/on-base:1", packages=[("goodlib", "2.1.0")], base=base_images["allowed"])
    result = gate(gate_world, ref, "--env", "prod", "--format", "json", allowlists=base_images["allowlists"])
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    [base] = [f for f in findings if f["check"] == "base-image"]
    assert base["level"] == "info" and "local/base/minimal:1.0" in base["reason"] and "containers.yaml:6" in base["reason"]
    [basepkg] = [f for f in findings if f.get("package") == "basepkg"]
    assert basepkg["level"] == "info" and "part of the allowed base image" in basepkg["reason"]


def test_image_on_another_base_fails(gate_world, base_images):
    ref = image(gate_world, "app/off-base:1", packages=[("goodlib", "2.1.0")], base=base_images["other"])
    result = gate(gate_world, ref, "--env", "prod", allowlists=base_images["allowlists"])
    assert result.returncode == 1
    assert "not built on an allowed base image" in result.stdout
    assert "allowed: local/base/minimal:1.0" in result.stdout


def test_without_containers_yaml_the_base_check_is_a_warning(gate_world):
    ref = image(gate_world, "app/no-base-policy:1", packages=[("goodlib", "2.1.0")])
    result = gate(gate_world, ref, "--env", "prod")
    assert result.returncode == 0
    assert "Warnings (1):" in result.stdout and "not configured: no containers.yaml" in result.stdout


def test_invalid_allowlists_cannot_be_decided(gate_world, tmp_path):
    (tmp_path / "pypi.yaml").write_text(PYPI_YAML.replace("versions:", "verisons:", 1))
    result = gate(gate_world, "app/clean:1", "--env", "prod", allowlists=tmp_path)
    assert result.returncode == 2
    assert "pypi.yaml:4: unknown key 'verisons'" in result.stderr and "run `airlock allowlist check" in result.stderr


@pytest.mark.parametrize("api_world", ["sqlite"], indirect=True)
def test_gate_with_server_uses_exceptions_and_reports_the_decision(gate_world, api_world):
    """With --server: approved exceptions count, the server audits the decision and sends the webhook."""
    ref = image(gate_world, "app/needs-exception:1", packages=[("omicron", "1.0")])
    archive = gate_world["tmp"] / "needs-exception.tar"
    ci = {"AIRLOCK_TOKEN": api_world.token("cicd-process", "pipeline"), "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "ml/churn",
          "GITHUB_RUN_ID": "4242", "GITHUB_SHA": "abc123", "GITHUB_ACTOR": "dev"}
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    blocked = gate(gate_world, "--input", str(archive), "--env", "prod", "--server", api_world.url, allowlists=api_world.pypi.allowlists, env=ci)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "blocked: omicron is not on the prod allowlist" in blocked.stdout

    governance = api_world.token("data-governance", "gina")
    trail = api_world.call("GET", "/api/v1/audit?action=gate.decision", governance).json()
    assert trail[-1]["actor"] == "pipeline" and trail[-1]["details"]["decision"] == "fail"
    assert trail[-1]["details"]["ci"]["url"] == "https://github.com/ml/churn/actions/runs/4242"
    deadline = time.monotonic() + 10
    while not [e for e in api_world.receiver.events("gate.decision") if e.event["data"]["image"] == str(archive)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [e for e in api_world.receiver.events("gate.decision") if e.event["data"]["image"] == str(archive)]

    request = api_world.call("POST", "/api/v1/exceptions", api_world.token("data-scientist", "dana"), {
        "ecosystem": "pypi", "package": "omicron", "versions": ">=1.0,<2", "environments": ["prod"], "project": "churn-model",
        "justification": "needed by the scoring image", "duration_days": 30}).json()
    approved = api_world.call("POST", f"/api/v1/exceptions/{request['id']}/approve", api_world.token("project-lead", "lena"), {"comment": "ok"})
    assert approved.status_code == 200, approved.text
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    passed = gate(gate_world, "--input", str(archive), "--env", "prod", "--server", api_world.url, "--format", "json",
                  allowlists=api_world.pypi.allowlists, env=ci)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    [omicron] = [f for f in json.loads(passed.stdout)["findings"] if f.get("package") == "omicron"]
    assert omicron["rule"] == f"exception {request['id']}" and omicron["level"] == "info"
    metrics = httpx.get(f"{api_world.url}/metrics").text
    counts = {decision: _sample(metrics, f'airlock_gate_decisions_total{{decision="{decision}"}}') for decision in ("pass", "fail")}
    assert counts["pass"] >= 1 and counts["fail"] >= 1, counts


@pytest.mark.parametrize("api_world", ["sqlite"], indirect=True)
def test_a_decision_with_hundreds_of_findings_reaches_the_server(gate_world, api_world, tmp_path):
    """An ML image carries hundreds of packages, each a finding: the server records the whole decision
    (over the 64 KB an exception request may send)."""
    names = [f"bulk{n}" for n in range(400)]
    (tmp_path / "pypi.yaml").write_text(PYPI_YAML + "".join(f"  - {{name: {name}, environments: [prod], reason: bulk, owner: ml}}\n" for name in names))
    (tmp_path / "gate.yaml").write_text(GATE_YAML)
    ref = image(gate_world, "app/many-packages:1", packages=[(name, "1.0") for name in names])
    result = gate(gate_world, ref, "--env", "prod", "--server", api_world.url, "--format", "json", allowlists=tmp_path,
                  env={"AIRLOCK_TOKEN": api_world.token("cicd-process", "pipeline")})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    trail = api_world.call("GET", "/api/v1/audit?action=gate.decision", api_world.token("data-governance", "gina")).json()
    [recorded] = [record for record in trail if record["subject"] == ref]
    assert recorded["details"]["decision"] == "pass" and len(recorded["details"]["findings"]) == len(report["findings"]) > 400


def _sample(metrics: str, name: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + " "))


def test_unreachable_server_cannot_be_decided(gate_world, tmp_path):
    result = gate(gate_world, "app/clean:1", "--env", "prod", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2 and "unreachable" in result.stderr and "the gate cannot decide without it" in result.stderr


def _context(tmp: Path, packages: list[tuple[str, str]]) -> Path:
    context = tmp / "solution"
    context.mkdir()
    shutil.copy("/usr/bin/busybox", context / "busybox")
    for name, version in packages:
        dist_info(context / "site", name, version)
    (context / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\nCOPY site {SITE}/\nCMD [\"/bin/busybox\", \"sh\"]\n")
    return context


CI_SYSTEMS = {"github": {"GITHUB_ACTIONS": "true"}, "azure": {"TF_BUILD": "True"}}
"""The variables by which gate-and-deploy.sh knows where it runs (and so how to annotate the run)."""


@pytest.mark.parametrize(("packages", "expected", "ci"), [([("goodlib", "2.1.0")], 0, "github"), ([("vulnlib", "1.0")], 1, "github"),
                                                         ([("goodlib", "2.1.0")], 0, "azure")], ids=["passing", "failing", "passing-azure"])
def test_pipeline_step_deploys_only_what_the_gate_passes(gate_world, tmp_path, packages, expected, ci):
    """pipelines/gate-and-deploy.sh exactly as both CI templates run it: build → gate → deploy."""
    registry = gate_world["registry"]
    name = f"pipeline-{'pass' if expected == 0 else 'fail'}-{ci}"
    env = {**gate_world["engine"].env, "PATH": f"{BIN}:{os.environ['PATH']}", **CI_SYSTEMS[ci],
           "AIRLOCK_ALLOWLISTS": str(gate_world["allowlists"]), "AIRLOCK_GATE_DB": str(gate_world["db"]),
           "AIRLOCK_DATA_DIR": str(gate_world["data"]), "AIRLOCK_REPORT_DIR": str(tmp_path / "report")}
    run = subprocess.run([str(REPO_ROOT / "pipelines" / "gate-and-deploy.sh"), str(_context(tmp_path, packages)), name, "1.0", "prod",
                          registry.host], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == expected, run.stdout + run.stderr
    deployed = httpx.head(f"{registry.url}/v2/{name}/manifests/1.0", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    report = json.loads((tmp_path / "report" / "gate.json").read_text())
    assert (tmp_path / "report" / "gate.sarif").is_file() and (tmp_path / "report" / "gate.cdx.json").is_file()
    if expected == 0:
        assert deployed.status_code == 200 and report["decision"] == "pass"
        passed = f"{name}:1.0 passed the prod gate and was deployed to {registry.host}/{name}:1.0"
        assert (f"::notice title=Airlock gate::{passed}" if ci == "github" else f"##[section]Airlock gate: {passed}") in run.stdout
    else:
        assert deployed.status_code == 404 and report["decision"] == "fail"
        assert f"::error title=Airlock gate::{name}:1.0 was blocked by the prod gate and discarded" in run.stdout
        assert not exists(gate_world, f"{name}:1.0")


@pytest.mark.parametrize(("ci", "annotation"), [("github", "::error title=Airlock gate::docker build of app:1 failed"),
                                               ("azure", "##vso[task.logissue type=error]Airlock gate: docker build of app:1 failed")])
def test_pipeline_step_reports_a_failed_build_to_the_ci_system(tmp_path, ci, annotation):
    env = {**os.environ, **CI_SYSTEMS[ci], "AIRLOCK_REPORT_DIR": str(tmp_path / "report")}
    run = subprocess.run([str(REPO_ROOT / "pipelines" / "gate-and-deploy.sh"), str(tmp_path / "no-such-context"), "app", "1", "prod",
                          "127.0.0.1:5000"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 3 and annotation in run.stdout and not (tmp_path / "report").exists()


def test_ci_templates_run_the_pipeline_step_and_publish_the_reports():
    import yaml

    github = yaml.safe_load((REPO_ROOT / "pipelines" / "github-actions.yml").read_text())
    steps = github["jobs"]["gate-and-deploy"]["steps"]
    commands = [step.get("run", "") for step in steps]
    assert any("pipelines/gate-and-deploy.sh" in command for command in commands)
    assert any(step.get("uses", "").startswith("github/codeql-action/upload-sarif") for step in steps)
    azure = yaml.safe_load((REPO_ROOT / "pipelines" / "azure-pipelines.yml").read_text())
    scripts = [step.get("script", "") for step in azure["steps"]]
    assert any("pipelines/gate-and-deploy.sh" in script for script in scripts)
    assert any(step.get("task", "").startswith("PublishBuildArtifacts") for step in azure["steps"])
    # The gate's extra brings Trivy and the Docker SDK; without it the step could not decide (exit 2).
    for installs in (commands, scripts):
        assert any(re.search(r'pip install "\./[\w.-]+\[gate\]"', command) for command in installs), installs


def test_unsupported_trivy_version_cannot_be_decided(gate_world, tmp_path):
    fake = tmp_path / "trivy"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "Version: 0.50.1"; exit 0; }\nexit 0\n')
    fake.chmod(0o755)
    ref = image(gate_world, "app/old-trivy:1", packages=[("goodlib", "2.1.0")])
    result = gate(gate_world, ref, "--env", "prod", "--trivy", str(fake))
    assert result.returncode == 2
    assert "Trivy 0.50.1 at" in result.stderr and "is not supported: the gate needs 0.76.x" in result.stderr


def test_trivy_timeout_cannot_be_decided(gate_world, tmp_path):
    slow = tmp_path / "trivy"
    slow.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec {BIN / "trivy"} "$@"\nexec sleep 60\n')
    slow.chmod(0o755)
    ref = image(gate_world, "app/slow-scan:1", packages=[("goodlib", "2.1.0")])
    result = gate(gate_world, ref, "--env", "prod", "--trivy", str(slow), "--timeout", "2")
    assert result.returncode == 2 and "Trivy scan timed out after 2 s" in result.stderr
    assert exists(gate_world, ref)  # not judged: kept, and not deployed
