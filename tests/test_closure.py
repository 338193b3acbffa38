"""`airlock allowlist closure`: a platform engineer asks whether every allowed entry installs, sees
what is missing and why, and lets `--write` add it. Real uv, a PyPI-like test upstream."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from testkit.pypi import Release, Upstream
from testkit.servers import PypiIndexServer
from testkit.worlds import BIN

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
ALLOWLIST = """\
# the team's allowlist
ecosystem: pypi
environments:
  prod: {targets: {python: ["3.11", "3.12"], platforms: [manylinux_2_28_x86_64, win_amd64]}}
  preprod: {extends: prod}

packages:
  # data frames
  - name: frames
    environments: [prod]
    reason: data frames
    owner: ml-platform
  - {name: boost, versions: ">=1,<2", environments: [prod], reason: boosting, owner: churn-team}
  - {name: numbers, versions: "<2", environments: [prod], reason: numerics, owner: ml-platform}
  - {name: oldpin, environments: [preprod], reason: needs numbers 2, owner: exp-team}

deny:
  - {name: badlib, reason: known malicious}
"""


def graph() -> list[Release]:
    return [
        Release(
            "frames",
            "2.3.3",
            requires=(
                "dateish>=2.8.2",
                "numbers>=1.26",
                "winclock; sys_platform == 'win32'",
                "newpy; python_version >= '3.12'",
            ),
        ),
        Release("dateish", "2.9.0", requires=("six>=1.5",), metadata=False),
        Release("six", "1.17.0"),
        Release("winclock", "1.0"),
        Release("newpy", "1.0"),
        Release("numbers", "1.26.4"),
        Release("numbers", "2.0.0"),
        Release("boost", "1.5", requires=("numbers", "badlib")),
        Release("badlib", "6.6.6"),
        Release("oldpin", "1.0", requires=("numbers>=2",)),
    ]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    root = tmp_path_factory.mktemp("closure-upstream")
    index = Upstream(root / "index")
    index.add(*graph())
    index.publish()
    server = PypiIndexServer(index.root).start()
    yield f"{server.url}/simple/"
    server.stop()


def closure(folder: Path, upstream: str, *args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRLOCK_PYPI_UPSTREAM": upstream, "AIRLOCK_DATA_DIR": str(data or folder.parent / "data")}
    return subprocess.run(
        [str(BIN / "airlock"), "allowlist", "closure", *args, "--allowlists", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder.parent,
        timeout=600,
    )


@pytest.fixture
def team_allowlists(tmp_path) -> Path:
    folder = tmp_path / "allowlists"
    folder.mkdir()
    (folder / "pypi.yaml").write_text(ALLOWLIST)
    return folder


def test_missing_dependencies_with_their_chain_targets_and_fix(team_allowlists, upstream):
    result = closure(team_allowlists, upstream, "--env", "prod", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["closed"] is False and report["environment"] == "prod"
    assert report["targets"] == [
        "cp311-manylinux_2_28_x86_64",
        "cp311-win_amd64",
        "cp312-manylinux_2_28_x86_64",
        "cp312-win_amd64",
    ]
    missing = {m["package"]: m for m in report["missing"]}
    assert set(missing) == {"dateish", "six", "winclock", "newpy", "badlib"}
    assert missing["dateish"]["requirement"] == "dateish>=2.8.2" and missing["dateish"]["required_by"] == [
        "frames 2.3.3"
    ]
    assert (
        missing["six"]["required_by"] == ["frames 2.3.3", "dateish 2.9.0"]
        and missing["six"]["requirement"] == "six>=1.5"
    )
    assert missing["winclock"]["targets"] == ["cp311-win_amd64", "cp312-win_amd64"]  # markers honoured per target
    assert missing["newpy"]["targets"] == ["cp312-manylinux_2_28_x86_64", "cp312-win_amd64"]
    assert (
        missing["dateish"]["fix"]
        == '{name: dateish, versions: ">=2.8.2", reason: dependency of frames, owner: ml-platform}'
    )
    assert missing["badlib"]["denied"].startswith(
        "blocked: badlib 6.6.6 is denied by allowlists/pypi.yaml:18 (known malicious)"
    )
    table = closure(team_allowlists, upstream, "--env", "prod")
    assert "frames 2.3.3 → dateish 2.9.0" in table.stdout and "MISSING" in table.stdout
    assert (
        "5 package(s) missing: add them with `airlock allowlist closure --env prod --ecosystem pypi --write`"
        in table.stdout
    )


def test_an_entry_whose_allowed_versions_cannot_install_is_named(team_allowlists, upstream):
    result = closure(team_allowlists, upstream, "--env", "preprod", "--json")
    assert result.returncode == 1
    [entry] = json.loads(result.stdout)["unsatisfiable"]
    assert entry["entry"] == "oldpin" and "numbers" in entry["explanation"]  # numbers is allowed <2 only


def test_write_adds_what_is_missing_keeping_the_file_and_a_second_run_adds_nothing(team_allowlists, upstream):
    (team_allowlists / "pypi.yaml").write_text(
        ALLOWLIST.replace(
            '  - {name: boost, versions: ">=1,<2", environments: [prod], reason: boosting, owner: churn-team}\n', ""
        )
    )
    before = (team_allowlists / "pypi.yaml").read_text()
    written = closure(team_allowlists, upstream, "--env", "prod", "--write")
    assert written.returncode == 0, written.stdout + written.stderr
    after = (team_allowlists / "pypi.yaml").read_text()
    assert after.startswith(before.split("  - {name: numbers")[0])  # comments, order, layout kept
    assert (
        after.count("# data frames") == 1
        and '  - name: dateish\n    versions: ">=2.8.2"\n    environments: [prod]\n'
        "    reason: dependency of frames\n    owner: ml-platform\n"
        in after
    )
    assert "+  - name: six" in written.stdout  # the diff is printed
    check = subprocess.run(
        [str(BIN / "airlock"), "allowlist", "check", str(team_allowlists)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    again = closure(team_allowlists, upstream, "--env", "prod", "--write")
    assert again.returncode == 0 and (team_allowlists / "pypi.yaml").read_text() == after
    assert "closed for" in again.stdout


def test_could_not_decide_is_exit_2_in_one_line(team_allowlists, tmp_path):
    down = closure(team_allowlists, "http://127.0.0.1:9/simple/", "--env", "prod")
    assert down.returncode == 2
    assert (
        down.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "airlock: could not decide the closure: could not decide for prod: the upstream index is unreachable"
        )
    )
    (team_allowlists / "pypi.yaml").write_text(
        ALLOWLIST.replace("platforms: [manylinux_2_28_x86_64, win_amd64]", "platforms: [linux]")
    )
    bad = closure(team_allowlists, "http://127.0.0.1:9/simple/", "--env", "prod")
    assert bad.returncode == 2 and "pypi.yaml:4: unknown platform tag 'linux'" in bad.stderr


def test_the_shipped_allowlists_are_closed_on_a_snapshot_of_pypi(tmp_path):
    """tests/fixtures/shipped_closure/packages.json: the releases the shipped allowlists' closure
    resolved to on the public PyPI (record.py), rebuilt as wheels with the same requirements."""
    recorded = json.loads((FIXTURES / "shipped_closure" / "packages.json").read_text())
    index = Upstream(tmp_path / "snapshot")
    index.add(
        *(
            Release(
                p["name"],
                p["version"],
                requires=tuple(p["requires_dist"]),
                requires_python=p["requires_python"],
                metadata=n % 2 == 0,
            )
            for n, p in enumerate(recorded)
        )
    )
    index.publish()
    server = PypiIndexServer(index.root).start()
    try:
        for env in ("prod", "preprod"):
            result = closure(
                REPO / "allowlists", f"{server.url}/simple/", "--env", env, "--json", data=tmp_path / "data"
            )
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
            assert json.loads(result.stdout)["closed"] is True
    finally:
        server.stop()


def test_targets_are_validated_by_check(tmp_path):
    folder = tmp_path / "allowlists"
    folder.mkdir()
    (folder / "pypi.yaml").write_text(
        textwrap.dedent("""\
        ecosystem: pypi
        environments:
          prod: {targets: {python: [3.11], platforms: [manylinux_2_28_x86_64], abi: [cp311]}}
        packages: []
        """)
    )
    result = subprocess.run([str(BIN / "airlock"), "allowlist", "check", str(folder)], capture_output=True, text=True)
    assert result.returncode == 1
    assert 'pypi.yaml:3: \'python\' must list CPython versions as strings, e.g. ["3.10", "3.11"]' in result.stdout
    assert "pypi.yaml:3: unknown key 'abi' in targets (use python, platforms)" in result.stdout


def test_the_review_template_runs_check_with_closure_and_that_command_fails_an_open_allowlist(
    team_allowlists, upstream
):
    import yaml

    workflow = yaml.safe_load((REPO / "pipelines" / "allowlists-review.yml").read_text())
    assert workflow[True]["pull_request"]["paths"] == ["allowlists/**"]  # YAML 1.1 reads `on` as true
    [command] = [
        step["run"] for step in workflow["jobs"]["check"]["steps"] if "airlock allowlist check" in step.get("run", "")
    ]
    assert command == "airlock allowlist check --closure allowlists/"
    env = {**os.environ, "AIRLOCK_PYPI_UPSTREAM": upstream, "AIRLOCK_DATA_DIR": str(team_allowlists.parent / "data")}
    result = subprocess.run(
        [str(BIN / "airlock"), *command.split()[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=team_allowlists.parent,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ok: 1 file valid" in result.stdout and "pypi prod: 3 entries, NOT closed" in result.stdout
    assert "pypi preprod:" in result.stdout and "oldpin cannot be installed from the preprod index" in result.stdout
