"""After deployment: a passed image's SBOM is kept with its decision, and `airlock-gate rescan`
re-judges it against a newer DB — an advisory published after the image passed makes it fail now,
recorded once as a gate decision."""

from __future__ import annotations

import json
import shutil
import subprocess

from testkit.images import osv
from testkit.worlds import BIN
from tests.gate_world import gate, image, last_audit


def _rescan(gate_world, env: dict, db) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "airlock-gate"),
        "rescan",
        "--since",
        "1d",
        "--format",
        "json",
        "--db",
        str(db),
        "--allowlists",
        str(gate_world["allowlists"]),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**gate_world["engine"].env, **env})


def test_an_advisory_published_after_an_image_passed_makes_it_fail_on_rescan(gate_world, tmp_path):
    env = {"AIRLOCK_DATA_DIR": str(tmp_path / "data")}
    ref = image(gate_world, "app/rescanned:1", packages=[("goodlib", "2.1.0")])
    passed = gate(gate_world, ref, "--env", "prod", env=env)
    assert passed.returncode == 0, passed.stderr
    [kept] = list((tmp_path / "data" / "gate" / "passed").iterdir())
    assert json.loads((kept / "decision.json").read_text())["image"] == ref
    assert "goodlib" in (kept / "trivy.json").read_text()

    same = _rescan(gate_world, env, gate_world["db"])
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout) == {"rescanned": 1, "would_fail": []}

    advisories = tmp_path / "advisories"
    shutil.copytree(gate_world["advisories"], advisories)
    (advisories / "GHSA-late-0000-0001.json").write_text(
        json.dumps(osv("GHSA-late-0000-0001", "goodlib", "2.2.0", "CRITICAL", summary="goodlib 2.1 leaks keys"))
    )
    built = subprocess.run(
        [str(BIN / "airlock-gate"), "db", "build", "--advisories", str(advisories), "--out", str(tmp_path / "db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    later = _rescan(gate_world, env, tmp_path / "db")
    assert later.returncode == 1, later.stderr
    [failing] = json.loads(later.stdout)["would_fail"]
    assert (failing["image"], failing["newly_failing"]) == (ref, True)
    assert failing["blocking"][0]["title"].startswith("GHSA-late-0000-0001 in goodlib 2.1.0")
    record = last_audit({**gate_world, "data": tmp_path / "data"})["details"]
    assert record["decision"] == "fail" and record["cause"].startswith("rescan: passed on ")

    again = _rescan(gate_world, env, tmp_path / "db")
    assert again.returncode == 1
    assert json.loads(again.stdout)["would_fail"][0]["newly_failing"] is False  # reported, not recorded twice
