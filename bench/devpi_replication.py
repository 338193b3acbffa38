"""Benchmark: package caches for N replicas — each its own devpi (what Airlock does) vs devpi's
replication (one primary, N-1 replicas started with --primary-url).

For N = 2 and 4 and an upstream of 30 wheels of 1 MiB: the time until every node answers (cold
start, nodes started one after another), the time until every node has served every file once (each node's clients ask it for every
file), and the disk all nodes hold afterwards. The baseline is the
first row: one devpi alone.

    .venv/bin/python bench/devpi_replication.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.children.devpi import INDEX, DevpiServer
from mirror.pypi.pages import FILE_BEING_STORED_DELAYS
from testkit.measure import du_mib
from testkit.pypi import Release, Upstream
from testkit.servers import PypiIndexServer, free_port, wait_for

PROJECTS = [f"wheel{number:02d}" for number in range(30)]


def serve_every_file(url: str) -> int:
    """What a node's clients do: read each project's page and download its wheel. devpi answers 500
    for a file another request is still storing; like Airlock, ask again a moment later. Returns how
    many such 500s there were."""
    retried = 0
    with httpx.Client(timeout=120) as client:
        for project in PROJECTS:
            page = client.get(f"{url}/{INDEX}/+simple/{project}/")
            page.raise_for_status()
            file_url = str(page.url.join(re.search(r'href="([^"#]+\.whl)', page.text)[1]))
            for delay in (*FILE_BEING_STORED_DELAYS, None):
                answer = client.get(file_url)
                if answer.status_code != 500 or delay is None:
                    break
                retried += 1
                time.sleep(delay)
            answer.raise_for_status()
    return retried


class ReplicaDevpi:
    """`devpi-server --primary-url`: a replica of the primary's whole state, files included."""

    def __init__(self, root: Path, primary: str, secret_file: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True)
        bin_dir = Path(sys.executable).parent
        subprocess.run(
            [str(bin_dir / "devpi-init"), "--serverdir", str(root / "server"), "--primary-url", primary],
            check=True,
            capture_output=True,
        )
        log = open(root / "devpi.log", "wb")  # noqa: SIM115 - devpi writes it while it runs
        self.process = subprocess.Popen(
            [
                str(bin_dir / "devpi-server"),
                "--serverdir",
                str(root / "server"),
                "--primary-url",
                primary,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--secretfile",  # the primary's: replication is authenticated with it
                str(secret_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(f"{self.url}/+api", timeout=120, process=self.process, log=root / "devpi.log")

    def wait_until_caught_up(self, primary: str, timeout: float = 120) -> None:
        wanted = _serial(primary)
        deadline = time.monotonic() + timeout
        while _serial(self.url) < wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the devpi replica {self.url} did not reach serial {wanted} (see {self.root})")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _serial(url: str) -> int:
    return httpx.get(f"{url}/+status", headers={"Accept": "application/json"}).json()["result"]["serial"]


def standalone(root: Path, upstream: str, role: str | None = None) -> DevpiServer:
    server = DevpiServer(root, upstream, cache_expiry=1800, timeout=30)
    if role:
        server.child.argv.extend(["--role", role])
    server.start()
    return server


def run(nodes: int, replication: bool, folder: Path, upstream_url: str) -> tuple[float, float, float, int]:
    """(cold start s, all nodes served every file s, disk MiB, 500s retried)."""
    started = time.monotonic()
    if replication:
        primary = standalone(folder / "primary", upstream_url, role="primary")
        replicas = [
            ReplicaDevpi(folder / f"replica{n}", primary.url, folder / "primary" / "devpi-secret")
            for n in range(nodes - 1)
        ]
        for replica in replicas:  # cold means caught up: the primary's index exists on the replica
            replica.wait_until_caught_up(primary.url)
        urls, stops = [primary.url] + [r.url for r in replicas], [primary.stop] + [r.stop for r in replicas]
        dirs = [folder / "primary"] + [r.root for r in replicas]
    else:
        # One after another, from this thread: devpi's supervisor ties each child's life to the thread
        # that started it (PR_SET_PDEATHSIG), so a pool's worker thread would take it down on exit.
        servers = [standalone(folder / f"own{n}", upstream_url) for n in range(nodes)]
        urls, stops, dirs = (
            [s.url for s in servers],
            [s.stop for s in servers],
            [folder / f"own{n}" for n in range(nodes)],
        )
    cold = time.monotonic() - started
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(nodes) as pool:
            retried = sum(pool.map(serve_every_file, urls))
        served = time.monotonic() - started
        time.sleep(2)  # replicas copy files in the background: count what they hold once settled
        return cold, served, du_mib(*dirs), retried
    finally:
        for stop in stops:
            stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pypi = Upstream(root / "upstream")
        pypi.add(*(Release(name, "1.0", payload=os.urandom(1 << 20)) for name in PROJECTS))
        pypi.publish()
        upstream = PypiIndexServer(pypi.root).start()
        try:
            print(f"{'caches':<34}{'cold start s':>13}{'every node served s':>21}{'disk MiB':>10}{'500s retried':>14}")
            rows = [(1, False)] + [(n, mode) for n in (2, 4) for mode in (False, True)]
            for nodes, replication in rows:
                label = f"{nodes} x own devpi" if not replication else f"1 primary + {nodes - 1} devpi replicas"
                cold, served, disk, retried = run(
                    nodes, replication, root / f"{nodes}-{replication}", f"{upstream.url}/simple/"
                )
                print(f"{label:<34}{cold:>13.1f}{served:>21.1f}{disk:>10.0f}{retried:>14}")
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()
