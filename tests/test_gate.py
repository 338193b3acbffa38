"""The deployment gate on real images: real engine, real registry, real Trivy with a DB built from
OSV advisories by `airlock-gate db build`, the real `airlock-gate` command."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from testkit.images import CLOUD_TOKENS, PRIVATE_KEY, oci_archive
from testkit.worlds import BIN
from tests.gate_world import PYPI_YAML, exists, gate, image, last_audit


def test_db_build_reports_what_it_wrote(gate_world):
    assert (
        "3 records read, 0 merged into another record's vulnerability, 0 skipped; 3 vulnerabilities for 3 packages"
        in gate_world["build_output"]
    )
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
    verify = subprocess.run(
        [str(BIN / "airlock"), "audit", "verify"],
        capture_output=True,
        text=True,
        env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])},
    )
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_secrets_fail_without_printing_them(gate_world):
    ref = image(
        gate_world,
        "app/leaky:1",
        packages=[("goodlib", "2.1.0")],
        files={"/app/deploy_key.pem": PRIVATE_KEY, "/app/settings.py": CLOUD_TOKENS},
    )
    result = gate(gate_world, ref, "--env", "prod", "--format", "json")
    assert result.returncode == 1, result.stderr
    found = {f["id"]: f for f in json.loads(result.stdout)["findings"] if f["check"] == "secrets"}
    assert {"private-key", "aws-access-key-id", "github-pat"} <= set(found), found
    assert found["private-key"]["path"] == "/app/deploy_key.pem:2" and found["private-key"]["level"] == "fail"
    for secret in (
        "AKIAZ3MSJV4WRSZWQFVG",
        "ghp_R8sJq2LmV5wX1tY7uZ3aB9cD4eF6gH0iK2Lm",
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO",
    ):
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


CONDA_YAML = """\
ecosystem: conda
environments: {prod: {}}
channels:
  conda-forge: {url: https://conda.anaconda.org/conda-forge}
packages:
  - {spec: "numpy >=1.26,<3", environments: [prod], reason: core numerics, owner: ml}
  - {spec: "pytorch >=2.3 *cuda*", environments: [prod], reason: GPU training, owner: ml}
"""


def _conda_record(prefix: str, name: str, version: str, build: str, files: list[str] = ()) -> tuple[str, str]:
    record = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "channel": "https://conda.anaconda.org/conda-forge/linux-64",
        "subdir": "linux-64",
        "license": "BSD-3-Clause",
        "files": list(files),
        "depends": [],
    }
    return f"{prefix}/conda-meta/{name}-{version}-{build}.json", json.dumps(record)


NUMPY_DIST_INFO = "lib/python3.11/site-packages/numpy-1.26.4.dist-info/METADATA"


def test_conda_packages_are_vetted_in_every_prefix_by_their_build(gate_world, tmp_path):
    """Trivy lists conda packages only under envs/NAME/ and without their build: the gate reads every
    conda-meta record, so a base-prefix install is vetted too, and a MatchSpec's build glob applies."""
    (tmp_path / "pypi.yaml").write_text(PYPI_YAML)
    (tmp_path / "conda.yaml").write_text(CONDA_YAML)
    # conda's numpy ships numpy's dist-info too (not on pypi.yaml): it is the conda package, vetted as such
    passing = image(
        gate_world,
        "app/conda-ok:1",
        files=dict(
            [
                _conda_record("/opt/conda", "numpy", "1.26.4", "py311h64a7726_0", files=["bin/f2py", NUMPY_DIST_INFO]),
                (f"/opt/conda/{NUMPY_DIST_INFO}", "Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n"),
                _conda_record("/opt/conda/envs/train", "pytorch", "2.3.1", "cuda118_py311_0"),
            ]
        ),
    )
    result = gate(
        gate_world,
        passing,
        "--env",
        "prod",
        "--format",
        "json",
        "--sbom",
        str(tmp_path / "sbom.cdx.json"),
        allowlists=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    vetted = {
        f["title"]: f.get("rule") or f["reason"]
        for f in json.loads(result.stdout)["findings"]
        if f["check"] == "provenance"
    }
    assert vetted == {
        "conda package numpy 1.26.4": f"{tmp_path / 'conda.yaml'}:6",
        "conda package pytorch 2.3.1": f"{tmp_path / 'conda.yaml'}:7",
        "python package numpy 1.26.4": "installed by conda package numpy 1.26.4 py311h64a7726_0, vetted as that",
    }
    components = json.loads((tmp_path / "sbom.cdx.json").read_text())["components"]
    assert {(c["name"], c["version"]) for c in components if c.get("purl", "").startswith("pkg:conda/")} == {
        ("numpy", "1.26.4"),
        ("pytorch", "2.3.1"),
    }

    failing = image(
        gate_world,
        "app/conda-unvetted:1",
        files=dict(
            [
                _conda_record("/opt/conda", "leftpad", "0.1", "0"),
                _conda_record("/opt/conda/envs/train", "pytorch", "2.3.1", "cpu_py311_0"),
            ]
        ),
    )
    result = gate(gate_world, failing, "--env", "prod", "--format", "json", allowlists=tmp_path)
    assert result.returncode == 1
    blocked = {f["title"]: f["reason"] for f in json.loads(result.stdout)["findings"] if f["level"] == "fail"}
    assert blocked["conda package leftpad 0.1"].startswith("blocked: leftpad is not on the prod allowlist")
    assert blocked["conda package pytorch 2.3.1"].startswith(
        "blocked: pytorch 2.3.1=cpu_py311_0 does not match the spec '>=2.3 *cuda*'"
    )


def _waivers(tmp: Path, expires: date) -> Path:
    path = tmp / "waivers.yaml"
    path.write_text(
        f'waivers:\n  - id: CVE-2026-1111\n    package: vulnlib\n    versions: "<1.1"\n    environments: [prod]\n'
        f"    reason: parser not reachable from the scoring path\n    approved_by: data-governance/jane\n    expires: {expires}\n"
    )
    return path


def test_waiver_passes_and_expired_waiver_fails(gate_world, tmp_path):
    ref = image(gate_world, "app/waived:1", packages=[("vulnlib", "1.0")])
    archive = tmp_path / "waived.tar"
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    waived = gate(
        gate_world,
        "--input",
        str(archive),
        "--env",
        "prod",
        "--waivers",
        str(_waivers(tmp_path, date.today() + timedelta(days=30))),
    )
    assert waived.returncode == 0, waived.stdout + waived.stderr
    assert "waived: CVE-2026-1111 in vulnlib 1.0" in waived.stdout and "data-governance/jane" in waived.stdout
    expired = gate(
        gate_world,
        "--input",
        str(archive),
        "--env",
        "prod",
        "--waivers",
        str(_waivers(tmp_path, date.today() - timedelta(days=1))),
    )
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
    """A docker-archive whose one layer is not a tar (its manifest and config are fine)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    )
    with tarfile.open(archive, "w") as out:
        for name, data in (
            ("config.json", config.encode()),
            ("layer.tar", b"\x00not a layer" * 100),
            (
                "manifest.json",
                json.dumps([{"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["layer.tar"]}]).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("corruption", "cause"),
    [
        (
            "not-a-tar",
            "the image archive {archive} is not a tar file: give a docker-archive (docker save IMAGE -o FILE) or an OCI archive or layout",
        ),
        (
            "garbage-layer",
            "layer sha256:" + "0" * 64 + " of {archive} is not a readable tar (no valid tar header at byte 0): "
            "the image archive is corrupt; export the image again",
        ),
    ],
)
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
    expected = (
        f"Trivy not found at {tmp_path / 'no-trivy'}: give the path of an executable trivy 0.76"
        if problem == "missing-trivy"
        else f"cannot read the image archive {archive}: give a docker-archive (docker save IMAGE -o FILE) or an OCI archive or layout"
    )
    assert f"could not decide, the image must not be deployed: {expected}" in result.stderr
    record = last_audit(gate_world)["details"]
    assert (record["decision"], record["image"]) == ("undecided", str(archive)) and record["cause"].startswith(expected)


def test_killed_trivy_cannot_be_decided(gate_world, tmp_path):
    ref = image(gate_world, "app/killed:1", packages=[("goodlib", "2.1.0")])
    wrapper = tmp_path / "trivy"
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec {BIN / "trivy"} "$@"\n{BIN / "trivy"} "$@" &\nsleep 0.3\nkill -9 $$\n'
    )
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
    result = subprocess.run(
        [
            str(BIN / "airlock-gate"),
            "scan",
            ref,
            "--env",
            "prod",
            "--allowlists",
            str(gate_world["allowlists"]),
            "--db",
            str(stale),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])},
    )
    assert result.returncode == 2
    assert "older than max_db_age 24.0 h in gate.yaml: rebuild it with `airlock-gate db build`" in result.stderr
    missing = subprocess.run(
        [
            str(BIN / "airlock-gate"),
            "scan",
            ref,
            "--env",
            "prod",
            "--allowlists",
            str(gate_world["allowlists"]),
            "--db",
            str(tmp_path / "nothing"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**gate_world["engine"].env, "AIRLOCK_DATA_DIR": str(gate_world["data"])},
    )
    assert missing.returncode == 2 and "no vulnerability DB in" in missing.stderr


def test_unreachable_engine_and_unknown_image_cannot_be_decided(gate_world):
    unreachable = gate(
        gate_world, "app/clean:1", "--env", "prod", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert (
        unreachable.returncode == 2
        and "Docker engine unreachable at unix:///nonexistent/docker.sock" in unreachable.stderr
    )
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


def test_image_on_allowed_base_passes_and_base_packages_are_vetted_by_it(gate_world, base_images):
    ref = image(gate_world, "app/on-base:1", packages=[("goodlib", "2.1.0")], base=base_images["allowed"])
    result = gate(gate_world, ref, "--env", "prod", "--format", "json", allowlists=base_images["allowlists"])
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    [base] = [f for f in findings if f["check"] == "base-image"]
    assert (
        base["level"] == "info" and "local/base/minimal:1.0" in base["reason"] and "containers.yaml:6" in base["reason"]
    )
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
