"""The gate's provenance check applies the environment's licence condition to what an image holds
(read by Trivy from the installed metadata); age and advisories are judged elsewhere."""

from __future__ import annotations

import json

from tests.gate_world import GATE_YAML, gate, image

PYPI = """\
ecosystem: pypi
environments:
  prod: {min_age: 7d, licenses: {deny: [AGPL-3.0-only]}}
packages:
  - {name: goodlib, environments: [prod], reason: core numerics, owner: ml}
  - {name: copyleftlib, environments: [prod], reason: parser, owner: legal}
"""


def test_a_denied_licence_in_an_image_fails_provenance(gate_world, tmp_path):
    folder = tmp_path / "allowlists"
    folder.mkdir()
    (folder / "pypi.yaml").write_text(PYPI)
    (folder / "gate.yaml").write_text(GATE_YAML)
    ref = image(
        gate_world, "app/licences:1", packages=[("goodlib", "2.1.0", "MIT"), ("copyleftlib", "1.0", "AGPL-3.0-only")]
    )
    result = gate(gate_world, ref, "--env", "prod", "--format", "json", allowlists=folder)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    failed = [f for f in report["findings"] if f["level"] == "fail"]
    assert [f["title"] for f in failed] == ["python package copyleftlib 1.0"]
    assert failed[0]["reason"].startswith(
        "withheld: copyleftlib 1.0 is licensed AGPL-3.0-only, and prod denies agpl-3.0-only"
    )
    # goodlib passes: min_age is not judged on an image (no upload times), its MIT licence is not denied
    assert not [f for f in report["findings"] if "goodlib" in f["title"] and f["level"] == "fail"]
