"""Property-based fuzz of the whole HTTP API from its own OpenAPI schema: no input yields a 5xx.

Runs the schemathesis command line (its stable interface) against the live service, once per
database backend, with a project lead's token so that the authorised paths are exercised too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_no_input_makes_the_server_fail(api_world, tmp_path):
    token = api_world.token("project-lead", "fuzzer")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api_world.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--workers",
            "1",
            "--seed",
            "1",  # 1: CPython 3.11 ast.parse is not thread-safe (hypothesis calls it)
            "--header",
            f"Authorization: Bearer {token}",
            "--request-timeout",
            "30",
            "--continue-on-failure",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCHEMATHESIS_HOOKS": ""},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    print(result.stdout[-1500:])
