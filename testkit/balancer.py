"""HAProxy (Debian's package) in front of Airlock replicas, configured by the shipped
`deploy/haproxy/haproxy.cfg`, so the tests and benchmarks run what a site would deploy."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.servers import REPO_ROOT, LoopbackServer, free_port, wait_for

SHIPPED_CONFIG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"


@dataclass
class Balancer(LoopbackServer):
    """`haproxy -f deploy/haproxy/haproxy.cfg` over `replicas` (URLs, one or two)."""

    workdir: Path
    replicas: list[str]
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def config(self) -> Path:
        """The shipped file; with one replica, its second `server` line left out (the 1-replica baseline)."""
        lines = SHIPPED_CONFIG.read_text().splitlines()
        if len(self.replicas) == 1:
            lines = [line for line in lines if "AIRLOCK_REPLICA_2" not in line or line.lstrip().startswith("#")]
        path = self.workdir / "haproxy.cfg"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Balancer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AIRLOCK_BALANCER_BIND": f"127.0.0.1:{self.port}",
            "AIRLOCK_BALANCER_STATS_BIND": f"127.0.0.1:{self.stats_port}",
        }
        for number, url in enumerate(self.replicas, start=1):
            env[f"AIRLOCK_REPLICA_{number}"] = url.removeprefix("http://")
        log = self.workdir / "haproxy.log"
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.config())], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        wait_for(f"http://127.0.0.1:{self.stats_port}/stats", process=self.process, log=log)
        return self

    def servers(self) -> dict[str, dict[str, str]]:
        """The backend's servers as the stats page reports them: {name: {status, stot (sessions), ...}}."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "airlock_replicas" and row["svname"].startswith("replica-")
        }
