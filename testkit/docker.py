"""A real Docker engine and registries on this machine, for the container tests.

The engine runs with the vfs storage driver and no iptables (see ../shared/FACTS.md); images are
built FROM scratch with Debian's static busybox, so nothing is pulled from the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit.servers import LoopbackServer, StoppableProcess, free_port, wait_for


@dataclass
class DockerEngine(StoppableProcess):
    root: Path
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_API_VERSION": "1.41",
            "DOCKER_CONFIG": str(self.root / "cli"),
        }

    def start(self) -> DockerEngine:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - the engine writes it while it runs
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--bridge=none",
                "--host",
                self.host,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "info"], env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("dockerd did not start: " + (self.root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.3)
        return self

    def stop(self) -> None:
        super().stop()
        # dockerd leaves its network namespace mounted; unmount it so pytest can remove the folder.
        netns = self.root / "exec" / "netns" / "default"
        if netns.exists():
            subprocess.run(["umount", "-l", str(netns)], capture_output=True)

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result

    def build(self, tag: str, layers: list[str], context: Path) -> None:
        """An image FROM scratch: busybox, then one layer per text file."""
        context.mkdir(parents=True, exist_ok=True)
        shutil.copy("/usr/bin/busybox", context / "busybox")
        lines = ["FROM scratch", "COPY busybox /bin/busybox"]
        for number, text in enumerate(layers):
            (context / f"layer{number}.txt").write_text(text)
            lines.append(f"COPY layer{number}.txt /data/layer{number}.txt")
        lines.append('CMD ["/bin/busybox", "sh"]')
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        self.docker("build", "-q", "-t", tag, str(context))


@dataclass
class Registry(LoopbackServer):
    """Debian's docker-registry (CNCF distribution 2.8) serving a folder on a free port."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, "
            f"delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{self.port}}}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "registry.log", "ab"),  # noqa: SIM115 - the registry writes it while it runs
        )
        wait_for(f"{self.url}/v2/", timeout=30, process=self.process, log=self.root / "registry.log")
        return self
