"""Waiting for Trivy: the exit code as the process ended, a timeout as a timeout, a reaped process
not confused with whatever took its pid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gate.scanner.process import _last_error, _wait_exit


def test_wait_returns_the_exit_code_and_the_signal():
    assert _wait_exit(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]), 60) == 3
    assert (
        _wait_exit(
            subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]), 60
        )
        == -9
    )


def test_wait_times_out_and_the_process_runs_on():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            _wait_exit(process, 0.2)
        assert process.poll() is None
    finally:
        process.kill()
    assert _wait_exit(process, 60) == -9


def test_a_process_already_reaped_keeps_its_code():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])
    process.wait()
    assert _wait_exit(process, 60) == 5


def test_a_trivy_error_keeps_its_causes():
    stderr = (
        "2026-11-29T06:57:01Z\tINFO\tLoading the vulnerability DB\n"
        "2026-11-29T06:57:01Z\tFATAL\tFatal error\trun error: unable to initialize archive image: 2 errors occurred:\n"
        "\t* unable to open app.tar as a Docker image: file manifest.json not found in tar\n"
        "\t* unable to open app.tar as an OCI Image: stat app.tar/index.json: not a directory\n\n"
    )
    assert _last_error(stderr) == (
        "run error: unable to initialize archive image: 2 errors occurred: "
        "* unable to open app.tar as a Docker image: file manifest.json not found in tar "
        "* unable to open app.tar as an OCI Image: stat app.tar/index.json: not a directory"
    )
    assert _last_error("") == "no message"
    assert _last_error("panic: runtime error\n") == "panic: runtime error"
