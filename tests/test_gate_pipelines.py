"""The gate in CI: reporting to the server (exceptions, audit, webhook), the build → gate → deploy step
the pipeline templates run, and the templates themselves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from testkit.images import SITE, dist_info
from testkit.servers import free_port
from testkit.worlds import BIN
from tests.conftest import REPO_ROOT
from tests.gate_world import GATE_YAML, PYPI_YAML, exists, gate, image


@pytest.mark.parametrize("api_world", ["sqlite"], indirect=True)
def test_gate_with_server_uses_exceptions_and_reports_the_decision(gate_world, api_world):
    """With --server: approved exceptions count, the server audits the decision and sends the webhook."""
    ref = image(gate_world, "app/needs-exception:1", packages=[("omicron", "1.0")])
    archive = gate_world["tmp"] / "needs-exception.tar"
    ci = {
        "AIRLOCK_TOKEN": api_world.token("cicd-process", "pipeline"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "ml/churn",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": "abc123",
        "GITHUB_ACTOR": "dev",
    }
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    blocked = gate(
        gate_world,
        "--input",
        str(archive),
        "--env",
        "prod",
        "--server",
        api_world.url,
        allowlists=api_world.pypi.allowlists,
        env=ci,
    )
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "blocked: omicron is not on the prod allowlist" in blocked.stdout

    governance = api_world.token("data-governance", "gina")
    trail = api_world.call("GET", f"/api/v1/audit?action=gate.decision&subject={archive}", governance).json()
    assert trail[-1]["actor"] == "pipeline" and trail[-1]["details"]["decision"] == "fail"
    assert trail[-1]["details"]["ci"]["url"] == "https://github.com/ml/churn/actions/runs/4242"
    deadline = time.monotonic() + 10
    while (
        not [e for e in api_world.receiver.events("gate.decision") if e.event["data"]["image"] == str(archive)]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    [event] = [
        e.event["data"] for e in api_world.receiver.events("gate.decision") if e.event["data"]["image"] == str(archive)
    ]
    # A notification, not the record: the blocking findings and counts, not every finding (the audit record has those).
    assert "findings" not in event and event["audit_id"] == trail[-1]["seq"]
    assert event["blocking_total"] == 1 and event["blocking"][0]["package"] == "omicron"
    assert event["summary"]["provenance.fail"] == 1 and event["summary"]["base-image.warn"] == 1
    assert (
        event["text"]
        == f"FAIL: {archive} for prod: 1 blocking finding(s) (provenance 1); audit record #{trail[-1]['seq']}"
    )

    request = api_world.call(
        "POST",
        "/api/v1/exceptions",
        api_world.token("data-scientist", "dana"),
        {
            "ecosystem": "pypi",
            "package": "omicron",
            "versions": ">=1.0,<2",
            "environments": ["prod"],
            "project": "churn-model",
            "justification": "needed by the scoring image",
            "duration_days": 30,
        },
    ).json()
    approved = api_world.call(
        "POST",
        f"/api/v1/exceptions/{request['id']}/approve",
        api_world.token("project-lead", "lena"),
        {"comment": "ok"},
    )
    assert approved.status_code == 200, approved.text
    gate_world["engine"].docker("save", ref, "-o", str(archive))
    passed = gate(
        gate_world,
        "--input",
        str(archive),
        "--env",
        "prod",
        "--server",
        api_world.url,
        "--format",
        "json",
        allowlists=api_world.pypi.allowlists,
        env=ci,
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    [omicron] = [f for f in json.loads(passed.stdout)["findings"] if f.get("package") == "omicron"]
    assert omicron["rule"] == f"exception {request['id']}" and omicron["level"] == "info"
    metrics = httpx.get(f"{api_world.url}/metrics").text
    counts = {
        decision: _sample(metrics, f'airlock_gate_decisions_total{{decision="{decision}"}}')
        for decision in ("pass", "fail")
    }
    assert counts["pass"] >= 1 and counts["fail"] >= 1, counts


@pytest.mark.parametrize("api_world", ["sqlite"], indirect=True)
def test_a_decision_with_hundreds_of_findings_reaches_the_server(gate_world, api_world, tmp_path):
    """An ML image carries hundreds of packages, each a finding: the server records the whole decision
    (over the 64 KB an exception request may send)."""
    names = [f"bulk{n}" for n in range(400)]
    (tmp_path / "pypi.yaml").write_text(
        PYPI_YAML + "".join(f"  - {{name: {name}, environments: [prod], reason: bulk, owner: ml}}\n" for name in names)
    )
    (tmp_path / "gate.yaml").write_text(GATE_YAML)
    ref = image(gate_world, "app/many-packages:1", packages=[(name, "1.0") for name in names])
    result = gate(
        gate_world,
        ref,
        "--env",
        "prod",
        "--server",
        api_world.url,
        "--format",
        "json",
        allowlists=tmp_path,
        env={"AIRLOCK_TOKEN": api_world.token("cicd-process", "pipeline")},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [recorded] = api_world.call(
        "GET", f"/api/v1/audit?action=gate.decision&subject={ref}", api_world.token("data-governance", "gina")
    ).json()
    assert (
        recorded["details"]["decision"] == "pass"
        and len(recorded["details"]["findings"]) == len(report["findings"]) > 400
    )


def _sample(metrics: str, name: str) -> float:
    return next(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + " "))


def test_unreachable_server_cannot_be_decided(gate_world, tmp_path):
    result = gate(gate_world, "app/clean:1", "--env", "prod", "--server", f"http://127.0.0.1:{free_port()}")
    assert (
        result.returncode == 2
        and "unreachable" in result.stderr
        and "the gate cannot decide without it" in result.stderr
    )


def _context(tmp: Path, packages: list[tuple[str, str]]) -> Path:
    context = tmp / "solution"
    context.mkdir()
    shutil.copy("/usr/bin/busybox", context / "busybox")
    for name, version in packages:
        dist_info(context / "site", name, version)
    (context / "Dockerfile").write_text(
        f'FROM scratch\nCOPY busybox /bin/busybox\nCOPY site {SITE}/\nCMD ["/bin/busybox", "sh"]\n'
    )
    return context


CI_SYSTEMS = {"github": {"GITHUB_ACTIONS": "true"}, "azure": {"TF_BUILD": "True"}}
"""The variables by which gate-and-deploy.sh knows where it runs (and so how to annotate the run)."""


@pytest.mark.parametrize(
    ("packages", "expected", "ci"),
    [([("goodlib", "2.1.0")], 0, "github"), ([("vulnlib", "1.0")], 1, "github"), ([("goodlib", "2.1.0")], 0, "azure")],
    ids=["passing", "failing", "passing-azure"],
)
def test_pipeline_step_deploys_only_what_the_gate_passes(gate_world, tmp_path, packages, expected, ci):
    """pipelines/gate-and-deploy.sh exactly as both CI templates run it: build → gate → deploy."""
    registry = gate_world["registry"]
    name = f"pipeline-{'pass' if expected == 0 else 'fail'}-{ci}"
    env = {
        **gate_world["engine"].env,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        **CI_SYSTEMS[ci],
        "AIRLOCK_ALLOWLISTS": str(gate_world["allowlists"]),
        "AIRLOCK_GATE_DB": str(gate_world["db"]),
        "AIRLOCK_DATA_DIR": str(gate_world["data"]),
        "AIRLOCK_REPORT_DIR": str(tmp_path / "report"),
    }
    run = subprocess.run(
        [
            str(REPO_ROOT / "pipelines" / "gate-and-deploy.sh"),
            str(_context(tmp_path, packages)),
            name,
            "1.0",
            "prod",
            registry.host,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == expected, run.stdout + run.stderr
    deployed = httpx.head(
        f"{registry.url}/v2/{name}/manifests/1.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    report = json.loads((tmp_path / "report" / "gate.json").read_text())
    assert (tmp_path / "report" / "gate.sarif").is_file() and (tmp_path / "report" / "gate.cdx.json").is_file()
    if expected == 0:
        assert deployed.status_code == 200 and report["decision"] == "pass"
        passed = f"{name}:1.0 passed the prod gate and was deployed to {registry.host}/{name}:1.0"
        assert (
            f"::notice title=Airlock gate::{passed}" if ci == "github" else f"##[section]Airlock gate: {passed}"
        ) in run.stdout
    else:
        assert deployed.status_code == 404 and report["decision"] == "fail"
        assert f"::error title=Airlock gate::{name}:1.0 was blocked by the prod gate and discarded" in run.stdout
        assert not exists(gate_world, f"{name}:1.0")


@pytest.mark.parametrize(
    ("ci", "annotation"),
    [
        ("github", "::error title=Airlock gate::docker build of app:1 failed"),
        ("azure", "##vso[task.logissue type=error]Airlock gate: docker build of app:1 failed"),
    ],
)
def test_pipeline_step_reports_a_failed_build_to_the_ci_system(tmp_path, ci, annotation):
    env = {**os.environ, **CI_SYSTEMS[ci], "AIRLOCK_REPORT_DIR": str(tmp_path / "report")}
    run = subprocess.run(
        [
            str(REPO_ROOT / "pipelines" / "gate-and-deploy.sh"),
            str(tmp_path / "no-such-context"),
            "app",
            "1",
            "prod",
            "127.0.0.1:5000",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
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


def test_the_scheduled_rescan_template_rebuilds_the_db_and_rescans_with_the_deploy_jobs_data_dir():
    import yaml

    rescan = yaml.safe_load((REPO_ROOT / "pipelines" / "rescan-scheduled.yml").read_text())
    deploy = yaml.safe_load((REPO_ROOT / "pipelines" / "github-actions.yml").read_text())
    assert rescan[True]["schedule"][0]["cron"]  # PyYAML reads the key `on` as True
    job = rescan["jobs"]["rescan"]
    commands = [step.get("run", "") for step in job["steps"]]
    assert commands.index(next(c for c in commands if c.startswith("airlock-gate db build"))) < commands.index(
        next(c for c in commands if c.startswith("airlock-gate rescan"))
    )
    assert job["env"]["AIRLOCK_DATA_DIR"] == deploy["jobs"]["gate-and-deploy"]["env"]["AIRLOCK_DATA_DIR"]
