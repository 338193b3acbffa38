"""`airlock allowlist explain` and `show` as a platform engineer or data scientist runs them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from mirror.allowlist_watch import AllowlistWatcher
from mirror.cli import main
from tests.conftest import REPO_ROOT

EXAMPLES = str(REPO_ROOT / "allowlists")


def explain(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["allowlist", "explain", *args, "--allowlists", EXAMPLES])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_explain_allowed_cites_file_line_and_owner(capsys):
    assert explain(capsys, "pypi", "NumPy==2.0.1", "--env", "prod") == (
        0,
        "allowed by allowlists/pypi.yaml:18 (numpy >=1.26,<3, owner ml-platform)",
        "",
    )


def test_explain_blocked_tells_how_to_ask(capsys):
    code, out, _ = explain(capsys, "pypi", "lightgbm==4.3.0", "--env", "prod")
    assert code == 1
    assert out.startswith(
        "blocked: lightgbm is not on the prod allowlist; to ask for it, request an exception: POST /api/v1/exceptions"
    )
    code, out, _ = explain(capsys, "pypi", "lightgbm==4.3.0", "--env", "preprod")
    assert code == 0 and "allowlists/pypi.yaml:57" in out


def test_explain_json_for_machines(capsys):
    code, out, _ = explain(capsys, "conda", "pytorch=2.4.0=cuda118_py311_0", "--env", "prod", "--json")
    assert code == 0
    assert json.loads(out) == {
        "ecosystem": "conda",
        "environment": "prod",
        "package": "pytorch",
        "version": "2.4.0",
        "build": "cuda118_py311_0",
        "allowed": True,
        "rule": "allowlists/conda.yaml:34",
        "reason": "allowed by allowlists/conda.yaml:34 (pytorch >=2.3 *cuda*, owner ml-platform)",
        "condition": None,
        "available_from": None,
        "upload_time": None,
        "licence": None,
    }


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ("mar/azureml/openmpi4.1.0-ubuntu22.04:20240501", 0),
        ("mar/azureml/openmpi4.1.0-ubuntu22.04:2023", 1),
        ("mar/azureml/openmpi4.1.0-ubuntu22.04@sha256:" + "0" * 64, 1),
    ],
)
def test_explain_containers(capsys, spec, code):
    assert explain(capsys, "containers", spec, "--env", "prod")[0] == code


@pytest.mark.parametrize(
    ("ecosystem", "spec", "message"),
    [
        ("pypi", "numpy", "airlock: bad SPEC 'numpy' for pypi: write NAME==VERSION, e.g. numpy==2.0.1"),
        (
            "pypi",
            "numpy==2.x",
            "airlock: bad SPEC 'numpy==2.x' for pypi: '2.x' is not a PEP 440 version (Airlock serves PEP 440 "
            "versions only); write NAME==VERSION, e.g. numpy==2.0.1",
        ),
        (
            "conda",
            "numpy==1.0",
            "airlock: bad SPEC 'numpy==1.0' for conda: write NAME=VERSION[=BUILD], e.g. pytorch=2.3.1=cuda118_py311_0",
        ),
        (
            "containers",
            "mar/x",
            "airlock: bad SPEC 'mar/x' for containers: write UPSTREAM/REPOSITORY:TAG or UPSTREAM/REPOSITORY@sha256:DIGEST, "
            "e.g. mar/azureml/openmpi4.1.0-ubuntu22.04:20240501",
        ),
    ],
)
def test_explain_bad_spec_exits_2(capsys, ecosystem, spec, message):
    assert explain(capsys, ecosystem, spec, "--env", "prod") == (2, "", message)


def test_explain_unknown_environment_exits_2(capsys):
    assert explain(capsys, "pypi", "numpy==2.0", "--env", "staging") == (
        2,
        "",
        "airlock: unknown environment 'staging' for pypi (known: prod, preprod)",
    )


def test_explain_with_invalid_allowlists_cannot_decide(write_allowlists, capsys):
    folder = write_allowlists({"pypi.yaml": "ecosystem: pypi\nenvironments: {prod: {}}\npackages:\n  - name: x\n"})
    code = main(["allowlist", "explain", "pypi", "x==1", "--env", "prod", "--allowlists", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot decide, the allowlists are invalid" in err and "pypi.yaml:4: missing 'environments'" in err


def test_show_prints_a_table_and_json(capsys):
    assert main(["allowlist", "show", "--env", "preprod", "--ecosystem", "pypi", "--allowlists", EXAMPLES]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ECOSYSTEM", "NAME", "ALLOWS", "STATE", "OWNER", "EXPIRES", "RULE"]
    lightgbm = next(line for line in out if " lightgbm " in line).split()
    assert lightgbm == ["pypi", "lightgbm", ">=4.3,<5", "allow", "churn-model", "2027-03-31", "allowlists/pypi.yaml:57"]
    assert out[-1] == f"{len(out) - 4} rules in force for preprod"
    assert main(["allowlist", "show", "--env", "prod", "--json", "--allowlists", EXAMPLES]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["ecosystem"] for r in records} == {"pypi", "conda", "containers"}
    assert not any(r["name"] == "lightgbm" for r in records)


def test_run_command_from_readme_checks_and_shows(tmp_path):
    """`scripts/run` with arguments is the README's way to call airlock after installing it."""
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "run"), "allowlist", "explain", "pypi", "torch==2.6.0", "--env", "prod"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("blocked: torch 2.6.0 is denied by allowlists/pypi.yaml:12")


def test_watcher_applies_edits_and_keeps_the_old_allowlist_on_a_bad_one(write_allowlists):
    base = "ecosystem: pypi\nenvironments: {prod: {}}\npackages:\n"
    entry = "  - {name: %s, environments: [prod], reason: r, owner: o}\n"
    folder = write_allowlists({"pypi.yaml": base + entry % "numpy"})
    watcher = AllowlistWatcher(folder)
    assert watcher.poll() is False
    first = watcher.current()
    assert first.decide("pypi", "prod", "numpy", "1.0").allowed
    assert not first.decide("pypi", "prod", "pandas", "1.0").allowed

    path = Path(folder, "pypi.yaml")
    path.write_text(base + entry % "numpy" + entry % "pandas")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert watcher.poll() is True
    second = watcher.current()
    assert second is not first
    assert second.decide("pypi", "prod", "pandas", "1.0").allowed

    path.write_text(base + entry % "numpy" + "  - {name: scipy, environments: [staging], reason: r, owner: o}\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert watcher.poll() is False
    assert watcher.current() is second
    assert [str(d).split(": ", 1)[1] for d in watcher.errors] == ["unknown environment 'staging' (declared: prod)"]
    assert not watcher.current().decide("pypi", "prod", "scipy", "1.0").allowed
