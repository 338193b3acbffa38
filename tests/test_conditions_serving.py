"""Conditions where decisions are made, with real clients: a cooldown (min_age) on the pages pip and
uv read, a file without an upload time, a malicious report added while the service runs (the page
follows within seconds, and a `policy.changed` record names what became withheld), a denied
licence read from the metadata, and `explain` / `report exposure` saying why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testkit.pypi import Release, Upstream
from testkit.servers import AirlockProcess, PypiIndexServer
from testkit.worlds import fresh_venv, installed, mint_token, pip, uv

NOW = datetime.now(UTC)


def stamp(age: timedelta) -> str:
    return (NOW - age).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


RELEASES = [
    Release("cooldown", "1.0", upload_time=stamp(timedelta(days=30))),
    Release("cooldown", "1.1", upload_time=stamp(timedelta(hours=1))),
    Release("undated", "1.0", upload_time=None),
    Release("maltarget", "1.0", upload_time=stamp(timedelta(days=40))),
    Release("maltarget", "1.1", upload_time=stamp(timedelta(days=20))),
    Release("copyleft", "1.0", upload_time=stamp(timedelta(days=40)), licence="AGPL-3.0-only"),
]
ALLOWLIST = """\
ecosystem: pypi
environments:
  prod:
    min_age: 7d
    block_vulnerable: high
    block_malicious: true
    licenses: {deny: [AGPL-3.0-only], unknown: allow}
packages:
  - {name: cooldown, environments: [prod], reason: r, owner: team-cool}
  - {name: undated, environments: [prod], reason: r, owner: team-undated}
  - {name: maltarget, environments: [prod], reason: r, owner: team-mal}
  - {name: copyleft, environments: [prod], reason: r, owner: team-legal}
"""
MALICIOUS = {
    "id": "MAL-2026-4242",
    "summary": "Malicious code in maltarget (PyPI)",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "maltarget"}, "versions": ["1.1"]}],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conditions")
    upstream = Upstream(tmp / "upstream")
    upstream.add(*RELEASES)
    upstream.publish()
    server = PypiIndexServer(upstream.root).start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(ALLOWLIST)
    advisories = tmp / "advisories"
    advisories.mkdir()
    airlock = AirlockProcess(
        tmp / "airlock",
        {
            "AIRLOCK_PYPI_UPSTREAM": f"{server.url}/simple/",
            "AIRLOCK_DATA_DIR": str(tmp / "data"),
            "AIRLOCK_ALLOWLISTS": str(allowlists),
            "AIRLOCK_ADVISORIES": str(advisories),
        },
    )
    try:
        airlock.start()
    except BaseException:
        server.stop()
        raise
    yield {"airlock": airlock, "index": f"{airlock.url}/pypi/prod/simple/", "tmp": tmp, "advisories": advisories}
    airlock.stop()
    server.stop()


def page(world, project: str) -> httpx.Response:
    return httpx.get(
        f"{world['index']}{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60
    )


def versions(world, project: str) -> list[str]:
    return page(world, project).json()["versions"]


def test_a_cooldown_withholds_new_releases_and_clients_install_the_older_one(world, tmp_path):
    response = page(world, "cooldown")
    assert response.json()["versions"] == ["1.0"]
    assert (
        "cooldown 1.1 was published 1 hour ago; prod requires 7 days (min_age, "
        in (response.headers["X-Airlock-Reason"])
    )
    for client in (pip, uv):
        python = fresh_venv(tmp_path / client.__name__)
        args = ["install", "--index-url", world["index"], "cooldown"]
        result = client(
            (["--python", str(python)] + args) if client is pip else (["pip", *args, "--python", str(python)]), tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert installed(python) == {"cooldown": "1.0"}


def test_the_clients_own_cutoffs_still_read_true_upload_times(world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    cutoff = (NOW - timedelta(days=35)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = uv(
        [
            "pip",
            "install",
            "--python",
            str(python),
            "--index-url",
            world["index"],
            "--exclude-newer",
            cutoff,
            "cooldown",
        ],
        tmp_path,
    )
    assert result.returncode != 0  # 1.0 (30 days old) is newer than the cutoff: nothing is left
    served = page(world, "cooldown").json()["files"]
    assert [f["upload-time"] for f in served] == [stamp(timedelta(days=30))]


def test_a_file_without_an_upload_time_counts_as_too_new(world):
    response = page(world, "undated").json()
    assert response["files"] == []
    assert response["project-status"]["status"] == "quarantined"  # PEP 792
    assert (
        "undated 1.0 has no upload time, so its age is unknown; prod requires 7 days"
        in response["project-status"]["reason"]
    )


def test_a_malicious_report_added_while_running_withholds_the_version_within_seconds(world, tmp_path):
    assert versions(world, "maltarget") == ["1.0", "1.1"]
    (world["advisories"] / "MAL-2026-4242.json").write_text(json.dumps(MALICIOUS))
    deadline = time.monotonic() + 20
    while versions(world, "maltarget") != ["1.0"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert versions(world, "maltarget") == ["1.0"]
    assert "maltarget 1.1 is reported malicious (MAL-2026-4242)" in page(world, "maltarget").headers["X-Airlock-Reason"]
    python = fresh_venv(tmp_path / "venv")
    result = pip(["--python", str(python), "install", "--index-url", world["index"], "maltarget==1.1"], tmp_path)
    assert result.returncode != 0
    record = _last_policy_change(world)
    assert record["details"]["newly_withheld"] == [
        {
            "package": "maltarget",
            "environment": "prod",
            "versions": ["1.1"],
            "conditions": ["block_malicious"],
            "advisories": ["MAL-2026-4242"],
            "entry": f"{world['tmp'] / 'allowlists' / 'pypi.yaml'}:11",
            "owner": "team-mal",
            "nearest_allowed": "1.0",
        }
    ]
    report = _airlock(world, "report", "exposure", "--env", "prod", "--json")
    assert report.returncode == 1, report.stderr
    [exposed] = json.loads(report.stdout)["exposed"]
    assert (exposed["package"], exposed["nearest_allowed"], exposed["owner"]) == ("maltarget", "1.0", "team-mal")


def test_a_denied_licence_read_from_the_metadata_withholds_the_file(world):
    [entry] = page(world, "copyleft").json()["files"]
    file_url = f"{world['index']}copyleft/{entry['url']}"
    assert httpx.get(file_url + ".metadata", timeout=60).status_code == 200  # what an installer reads first
    refused = httpx.get(file_url, timeout=60)
    assert refused.status_code == 404
    assert refused.headers["X-Airlock-Reason"].startswith(
        "withheld: copyleft 1.0 is licensed AGPL-3.0-only, and prod denies agpl-3.0-only (licenses, "
    )
    explained = _airlock(world, "allowlist", "explain", "pypi", "copyleft==1.0", "--env", "prod")
    assert explained.returncode == 1
    assert "copyleft 1.0 is licensed AGPL-3.0-only" in explained.stdout


def test_explain_names_the_condition_and_when_the_release_becomes_available(world):
    page(world, "cooldown")
    explained = _airlock(world, "allowlist", "explain", "pypi", "cooldown==1.1", "--env", "prod", "--json")
    answer = json.loads(explained.stdout)
    assert explained.returncode == 1 and answer["condition"] == "min_age"
    assert answer["available_from"].startswith((NOW - timedelta(hours=1) + timedelta(days=7)).strftime("%Y-%m-%dT%H"))


def _airlock(world, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRLOCK_DATA_DIR": str(world["tmp"] / "data"),
        "AIRLOCK_ALLOWLISTS": str(world["tmp"] / "allowlists"),
        "AIRLOCK_ADVISORIES": str(world["advisories"]),
    }
    return subprocess.run([sys.executable, "-m", "mirror", *args], capture_output=True, text=True, env=env, timeout=120)


def _last_policy_change(world) -> dict:
    exported = _airlock(world, "audit", "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    return [r for r in records if r["action"] == "policy.changed"][-1]


def test_an_approved_exception_waives_one_condition_for_one_version(world, tmp_path):
    database = f"sqlite:///{world['tmp'] / 'data' / 'airlock.db'}"
    alice, gina = mint_token(database, "data-scientist", "alice"), mint_token(database, "data-governance", "gina")
    api = f"{world['airlock'].url}/api/v1/exceptions"
    body = {
        "ecosystem": "pypi",
        "package": "cooldown",
        "versions": ">=1.1",
        "environments": ["prod"],
        "project": "churn-model",
        "justification": "the 1.1 fix for the churn model cannot wait a week",
        "waive": ["min_age"],
    }
    unnamed = httpx.post(api, json=body, headers={"Authorization": f"Bearer {alice}"})
    assert unnamed.status_code == 422
    assert unnamed.json()["detail"][0]["msg"] == "a waiver names the version it is for: give versions as ==X.Y"
    created = httpx.post(api, json={**body, "versions": "==1.1"}, headers={"Authorization": f"Bearer {alice}"})
    assert created.status_code == 201, created.text
    assert created.json()["waives"] == ["min_age"]
    approved = httpx.post(
        f"{api}/{created.json()['id']}/approve",
        json={"comment": "urgent fix"},
        headers={"Authorization": f"Bearer {gina}"},
    )
    assert approved.status_code == 200, approved.text
    deadline = time.monotonic() + 10
    while versions(world, "cooldown") != ["1.0", "1.1"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert versions(world, "cooldown") == ["1.0", "1.1"]
    python = fresh_venv(tmp_path / "venv")
    result = pip(["--python", str(python), "install", "--index-url", world["index"], "cooldown==1.1"], tmp_path)
    assert result.returncode == 0, result.stderr
    explained = _airlock(world, "allowlist", "explain", "pypi", "cooldown==1.1", "--env", "prod")
    assert "withheld: cooldown 1.1 was published" in explained.stdout  # explain reads the files, not exceptions
