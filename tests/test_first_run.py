"""The first run as a person sees it: `airlock up` on a terminal prints readable lines and a banner
that tells what is not ready and what to do; piped, it logs JSON for machines."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from testkit.servers import free_port

CONTAINERS = """\
ecosystem: containers
environments: {prod: {}}
upstreams:
  mar: {url: "http://127.0.0.1:9"}
images:
  - {image: mar/azureml/base, tags: ["1.*"], environments: [prod], reason: base, owner: platform}
"""
CONDA = """\
ecosystem: conda
environments: {prod: {}}
channels:
  conda-forge: {url: "http://127.0.0.1:9/conda-forge", subdirs: [noarch]}
packages:
  - {spec: numpy, environments: [prod], reason: numerics, owner: ml}
"""
SENTENCE = (
    "base images from `mar` (127.0.0.1:9) are unavailable: the upstream refuses connections; "
    "everything else is served; retrying every 30 s"
)
BANNER_END = "Stop with Ctrl-C."


@pytest.fixture
def first_run(tmp_path):
    allowlists = tmp_path / "allowlists"
    allowlists.mkdir()
    (allowlists / "containers.yaml").write_text(CONTAINERS)
    (allowlists / "conda.yaml").write_text(CONDA)
    port = free_port()
    env = {
        **os.environ,
        "AIRLOCK_DATA_DIR": str(tmp_path / "data"),
        "AIRLOCK_ALLOWLISTS": str(allowlists),
        "AIRLOCK_LISTEN": f"127.0.0.1:{port}",
        "AIRLOCK_PYPI_UPSTREAM": "http://127.0.0.1:9/simple/",
    }
    env.pop("AIRLOCK_LOG_FORMAT", None)
    return [sys.executable, "-m", "mirror", "up"], env, tmp_path, port


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def test_a_terminal_gets_readable_lines_a_banner_and_one_sentence_about_the_registry(first_run):
    command, env, tmp, port = first_run
    primary, secondary = pty.openpty()
    process = subprocess.Popen(command, env=env, cwd=tmp, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    screen = b""
    try:
        deadline = time.monotonic() + 120
        while BANNER_END.encode() not in screen and time.monotonic() < deadline:
            if select.select([primary], [], [], 1)[0]:
                try:
                    screen += os.read(primary, 65536)
                except OSError:  # the child closed the terminal
                    break
    finally:
        _stop(process)
        os.close(primary)
    text = screen.decode("utf-8", "replace").replace("\r\n", "\n")
    assert BANNER_END in text, text
    assert f"Airlock is serving on http://127.0.0.1:{port}" in text
    lines = text.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], text  # no JSON on a terminal
    assert not [line for line in lines if "github.com/" in line or "goroutine" in line or "main.main" in line]
    assert sum(SENTENCE in line for line in lines) == 1, text
    assert "WARN  " + SENTENCE in text
    assert "alembic" not in text and "Waiting for application startup" not in text
    assert "Not ready yet:" in text
    assert "conda channel `conda-forge` is not synced for prod (its URLs answer 503): run `airlock sync conda`" in text


def test_a_pipe_gets_json_lines_with_the_cause_as_a_field(first_run):
    command, env, tmp, _ = first_run
    log = tmp / "up.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, cwd=tmp, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while BANNER_END not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _stop(process)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [warning] = [r for r in records if r.get("upstream") == "mar"]
    assert warning["level"] == "warning" and warning["message"] == SENTENCE
    assert warning["cause"] == "the upstream refuses connections"
    assert not [r for r in records if "color_message" in r or r["logger"].startswith("alembic")]
    assert all({"time", "level", "logger", "message", "request_id"} <= r.keys() for r in records)
