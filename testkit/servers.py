"""Processes the tests and benchmarks start on 127.0.0.1: static and PyPI-like file servers, and Airlock itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered:\n{tail}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not answer within {timeout} s\n{tail}")


class StoppableProcess:
    """A test process: `stop()` terminates it and waits."""

    process: subprocess.Popen | None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


class LoopbackServer(StoppableProcess):
    """A test server listening on 127.0.0.1:`port`."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class StaticServer(LoopbackServer):
    """`python -m http.server` over a folder: what a plain PyPI-like upstream or mirror serves."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    keep_alive: bool = False
    """False: `python -m http.server`, a new connection per request; True: `testkit.static_http`,
    HTTP/1.1 keep-alive as a CDN serves (the conda benchmark: thousands of small files)."""

    def served(self) -> list[str]:
        """`python -m` arguments of the server."""
        if self.keep_alive:
            return ["testkit.static_http", str(self.port), str(self.directory.resolve())]
        return ["http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(self.directory.resolve())]

    def start(self) -> StaticServer:
        served = self.served()
        self.process = subprocess.Popen(
            [sys.executable, "-m", *served],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.url + "/", process=self.process)
        return self


@dataclass
class PypiIndexServer(StaticServer):
    """`testkit.pypi_index` over an `Upstream` folder: JSON or HTML by Accept, byte ranges,
    raw and HTML-only pages, a project list as slow as `_server.json` says."""

    def served(self) -> list[str]:
        return ["testkit.pypi_index", str(self.port), str(self.directory.resolve())]


@dataclass
class AirlockProcess(LoopbackServer):
    """`airlock up` as a user runs it, configured only through AIRLOCK_* variables."""

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "airlock-up.log"

    def start(self, timeout: float = 180.0) -> AirlockProcess:
        env = {**os.environ, **self.env, "AIRLOCK_LISTEN": f"127.0.0.1:{self.port}"}
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mirror", "up"],
                cwd=self.workdir,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self.url + "/readyz", timeout=timeout, process=self.process, log=self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode if self.process else None
