"""Benchmark: Airlock replicas behind HAProxy (deploy/haproxy/haproxy.cfg) on one PostgreSQL.

Prints, measured in this run:
- requests/s of a PyPI page and a wheel through the balancer with 2 replicas vs 1 (the baseline);
  on these 2-core machines the replicas, HAProxy, wrk and PostgreSQL share the same cores, so the
  ratio is a floor for what a second machine gives;
- propagation: an approval on replica A until replica B serves it (PyPI, conda);
- cost per replica: cold start on a fresh data dir, resident memory, disk after serving;
- database work: transactions per second of an idle replica (its decision poller), and the rows
  one request plus approval writes.

    .venv/bin/python bench/replicas.py            (needs wrk, haproxy and Debian's postgresql)
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.balancer import Balancer
from testkit.measure import du_mib, rss_mib, throughput
from testkit.replicas import in_channel, served_by, start_replica_world, until


def database_counters(url: str) -> tuple[int, int]:
    """(transactions committed, rows inserted + updated) in the Airlock database so far."""
    out = subprocess.run(
        [
            "psql",
            "-At",
            url.replace("postgresql+psycopg", "postgresql"),
            "-c",
            "select pg_stat_force_next_flush(); "
            "select xact_commit, tup_inserted + tup_updated from pg_stat_database where datname = 'airlock'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    commits, rows = out[-1].split("|")
    return int(commits), int(rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        world = start_replica_world(Path(folder))
        try:
            started = time.monotonic()
            a = world.add_replica("a", sync=False)
            cold_start = time.monotonic() - started
            b = world.add_replica("b", sync=False)
            for name in ("a", "b"):
                world.sync_conda(name)
            page = "/pypi/prod/simple/alpha/"
            wheel = re.search(r'href="([^"#]+\.whl)', httpx.get(f"{a.url}{page}").text).group(1)
            wheel_path = str(httpx.URL(f"{a.url}{page}").join(wheel).path)
            httpx.get(f"{b.url}{wheel_path}")  # both caches hold the file before timing

            print(f"{'route':<24}{'1 replica req/s':>16}{'2 replicas req/s':>18}{'2 vs 1':>8}")
            for label, path in (("PyPI page (alpha)", page), ("wheel (alpha 1.0)", wheel_path)):
                rates = []
                for replicas in ([a.url], [a.url, b.url]):
                    balancer = Balancer(Path(folder) / f"haproxy{len(replicas)}", replicas).start()
                    try:
                        until(lambda: all(s["status"] == "UP" for s in balancer.servers().values()), 30)  # noqa: B023
                        rates.append(throughput(f"{balancer.url}{path}", seconds=8))
                    finally:
                        balancer.stop()
                print(f"{label:<24}{rates[0]:>16.0f}{rates[1]:>18.0f}{rates[1] / rates[0]:>7.2f}x")
            print(
                "(one replica's event loop keeps about one core busy; here both replicas, HAProxy, PostgreSQL and "
                "wrk share 2 cores, so replicas on their own machines gain more)"
            )

            pypi_times, conda_times = [], []
            for package in ("kappa", "mu", "nu"):
                approved = world.approve(a, "pypi", package)
                pypi_times.append(until(lambda: served_by(b, package), 30) - approved)  # noqa: B023
            for package in ("libcublas", "libcusparse"):
                approved = world.approve(a, "conda", package)
                conda_times.append(until(lambda: in_channel(b, package), 120) - approved)  # noqa: B023
            print(
                f"propagation A -> B: PyPI median {statistics.median(pypi_times):.2f} s (max {max(pypi_times):.2f}), "
                f"conda median {statistics.median(conda_times):.2f} s (max {max(conda_times):.2f}; one sync)"
            )

            idle_before = database_counters(world.postgres.url)
            time.sleep(10)
            idle_after = database_counters(world.postgres.url)
            commits_per_second = (idle_after[0] - idle_before[0]) / 10
            rows_per_second = (idle_after[1] - idle_before[1]) / 10
            before, started = database_counters(world.postgres.url), time.monotonic()
            for _ in range(5):  # the same exception asked and approved again: each is a new request
                world.approve(a, "pypi", "alpha")
            after, elapsed = database_counters(world.postgres.url), time.monotonic() - started
            rows = (after[1] - before[1] - rows_per_second * elapsed) / 5
            print(
                f"database: {commits_per_second / 2:.1f} transactions/s per idle replica (decision poller; "
                f"{rows_per_second:.1f} rows/s written while idle); request + approval: {rows:.0f} rows written"
            )
            print(
                f"per replica: cold start {cold_start:.1f} s to ready (fresh data dir, own devpi), "
                f"memory {rss_mib(a.process.pid, descendants=True):.0f} MiB resident (Airlock + devpi + caches), "
                f"data dir {du_mib(world.data_dir('a')):.1f} MiB after this run"
            )
            # Scaling out from 2 to 4: two more replicas started together, each with its own cache.
            started = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda name: world.add_replica(name, sync=False), ("c", "d")))
            both_ready = time.monotonic() - started
            for replica in world.replicas[2:]:
                httpx.get(f"{replica.url}{wheel_path}")
            disks = [du_mib(world.data_dir(name)) for name in "abcd"]
            print(
                f"2 -> 4 replicas: the two new ones ready {both_ready:.1f} s after starting together; "
                f"data dirs {' + '.join(f'{d:.1f}' for d in disks)} MiB (each replica caches what it serves)"
            )
        finally:
            world.stop()


if __name__ == "__main__":
    main()
