"""The gate on real advisory data: GHSA and PYSEC records (tests/fixtures/advisories) built into a
Trivy DB by `airlock-gate db build`, real Trivy scanning images that hold the affected versions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testkit.worlds import BIN
from tests.gate_world import exists, gate, image

FIXTURES = Path(__file__).parent / "fixtures" / "advisories"
PYPI_YAML = """\
ecosystem: pypi
environments: {prod: {}, preprod: {extends: prod}}
packages:
  - {name: django, environments: [prod], reason: web, owner: ml}
  - {name: urllib3, environments: [prod], reason: http, owner: ml}
  - {name: py, environments: [prod], reason: legacy, owner: ml}
  - {name: aiohttp, environments: [prod], reason: http, owner: ml}
"""


@pytest.fixture(scope="module")
def real_db(gate_world):
    folder = gate_world["tmp"] / "real-advisories"
    built = subprocess.run(
        [str(BIN / "airlock-gate"), "db", "build", "--advisories", str(FIXTURES / "real"), "--out", str(folder / "db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    allowlists = folder / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    (allowlists / "gate.yaml").write_text((Path(__file__).parents[1] / "allowlists" / "gate.yaml").read_text())
    return {"db": folder / "db", "allowlists": allowlists, "output": built.stdout}


def findings(result: subprocess.CompletedProcess) -> dict[tuple[str, str], dict]:
    report = json.loads(result.stdout)
    return {(f["package"], f["id"]): f for f in report["findings"] if f["check"] == "vulnerabilities"}


def test_db_build_says_what_it_read_merged_and_skipped(real_db):
    assert "6 records read, 1 merged into another record's vulnerability, 1 skipped" in real_db["output"]
    assert (
        "skipped " in real_db["output"] and "PYSEC-2022-43059): withdrawn on 2023-11-08T00:54:24Z" in real_db["output"]
    )


def test_every_branch_of_a_multi_range_advisory_and_the_ghsa_severity(gate_world, real_db):
    ref = image(gate_world, "app/old-django:1", packages=[("Django", "2.2.27"), ("urllib3", "1.26.18")])
    result = gate(
        gate_world, ref, "--env", "prod", "--format", "json", db=real_db["db"], allowlists=real_db["allowlists"]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    found = findings(result)
    django = found[("Django", "CVE-2022-28346")]  # as the image spells it
    assert django["severity"] == "CRITICAL" and django["level"] == "fail"
    assert (
        "SQL Injection in Django" in django["reason"] and "upgrade Django to 2.2.28, 3.2.13, 4.0.4" in django["reason"]
    )
    urllib3 = found[("urllib3", "CVE-2024-37891")]  # the 1.x branch: the first of two affected entries
    assert urllib3["severity"] == "MEDIUM" and urllib3["level"] == "warn"
    assert not exists(gate_world, ref)


def test_unrated_vulnerabilities_fail_prod_and_warn_preprod(gate_world, real_db):
    ref = image(gate_world, "app/old-py:1", packages=[("py", "1.11.0"), ("aiohttp", "3.9.0")])
    preprod = gate(
        gate_world, ref, "--env", "preprod", "--format", "json", db=real_db["db"], allowlists=real_db["allowlists"]
    )
    assert preprod.returncode == 0, preprod.stdout + preprod.stderr
    py = findings(preprod)[("py", "CVE-2022-42969")]
    assert py["severity"] == "UNKNOWN" and py["level"] == "warn"
    assert "has no severity: no advisory source rated it, and preprod only warns" in py["reason"]
    assert not [key for key in findings(preprod) if key[0] == "aiohttp"]  # the withdrawn record names every version
    prod = gate(
        gate_world, ref, "--env", "prod", "--format", "json", db=real_db["db"], allowlists=real_db["allowlists"]
    )
    assert prod.returncode == 1, prod.stdout + prod.stderr
    py = findings(prod)[("py", "CVE-2022-42969")]
    assert py["level"] == "fail" and "prod fails on unrated vulnerabilities (gate.yaml unknown: fail)" in py["reason"]
    assert py["reason"].startswith("UNKNOWN (The py library through 1.11.0 for Python allows remote attackers")
