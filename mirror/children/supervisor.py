"""Child processes Airlock runs on loopback (devpi-server, the registry cache): start, wait until
ready, restart on crash, stop cleanly. One implementation for every child.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("airlock.children")

_PR_SET_PDEATHSIG = 1


class ChildError(Exception):
    """A child could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if Airlock dies, even by SIGKILL: no orphans."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_command(argv: Sequence[str], timeout: float, what: str, env: dict[str, str] | None = None) -> str:
    """Run a short command; raise ChildError with its stderr's last lines when it fails."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise ChildError(f"{what}: {argv[0]} is not installed (reinstall airlock: scripts/run)") from None
    except subprocess.TimeoutExpired:
        raise ChildError(f"{what}: {argv[0]} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ChildError(f"{what}: {argv[0]} exited with {result.returncode}: {tail}")
    return result.stdout


@dataclass
class ChildProcess:
    """A supervised child. `ready` probes it (True when it answers)."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    ready_timeout: float = 60.0
    env: dict[str, str] | None = None
    max_restarts: int = 5
    quiet: bool = False
    """A retry of a child that could not start: its start is not news (logged at DEBUG)."""
    on_event: Callable[[str, str], None] = lambda name, event: None
    restarts: int = 0
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _watcher: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def healthy(self) -> bool:
        return self.running and self._safe_ready()

    def start(self) -> None:
        self._stopping.clear()
        self._spawn()
        self._wait_ready()
        self._watcher = threading.Thread(target=self._watch, name=f"watch-{self.name}", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        except ProcessLookupError:
            pass
        self.on_event(self.name, "stopped")

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as output:
            self._process = subprocess.Popen(
                self.argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.log(
            logging.DEBUG if self.quiet else logging.INFO,
            "started %s (pid %d), log %s",
            self.name,
            self._process.pid,
            self.log_path,
        )

    def _safe_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # a probe that cannot connect yet is simply "not ready"
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ChildError(
                    f"{self.name} exited with {self._process.returncode} while starting: {self._log_tail()}"
                )
            if self._safe_ready():
                return
            time.sleep(0.1)
        raise ChildError(f"{self.name} did not become ready within {self.ready_timeout:.0f} s: {self._log_tail()}")

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            if self.restarts >= self.max_restarts:
                log.error("%s exited with %s; gave up after %d restarts", self.name, code, self.restarts)
                self.on_event(self.name, "failed")
                return
            self.restarts += 1
            log.error(
                "%s exited unexpectedly with %s; restarting (restart %d of %d)",
                self.name,
                code,
                self.restarts,
                self.max_restarts,
            )
            self.on_event(self.name, "restarted")
            time.sleep(min(2 ** (self.restarts - 1) * 0.5, 10))
            try:
                self._spawn()
                self._wait_ready()
            except ChildError as exc:
                log.error("%s", exc)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"
