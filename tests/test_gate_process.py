"""Waiting for Trivy: the exit code as the process ended, a timeout as a timeout, a reaped process
not confused with whatever took its pid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gate.scanner.process import _wait_exit


def test_wait_returns_the_exit_code_and_the_signal():
    assert _wait_exit(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]), 60) == 3
    assert _wait_exit(subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]), 60) == -9


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
