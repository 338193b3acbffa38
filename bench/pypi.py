"""Benchmark: the curated PyPI against plain devpi and a static file server, all in one run.

For a small project page and one with 2,000 files: median and p99 latency (sequential, one
keep-alive connection) and requests/s (wrk, 16 connections), through Airlock vs straight from
the devpi that Airlock runs vs a static server of the upstream's own files. Then a warm
`pip install` of 30 packages through Airlock vs the static index.
Goals (issue 3): latency <= 1.10x devpi, throughput >= 90 % of devpi, warm install <= 1.2x static.

    .venv/bin/python bench/pypi.py            (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.measure import throughput
from testkit.pypi import Release, Upstream
from testkit.servers import AirlockProcess, StaticServer
from testkit.worlds import fresh_venv, pip

JSON_V1 = "application/vnd.pypi.simple.v1+json"
BIG_FILES = 2000
INSTALL_PACKAGES = 30


def latencies(url: str, accept: str, count: int = 400) -> tuple[float, float]:
    with httpx.Client(headers={"Accept": accept}) as client:
        for _ in range(20):
            client.get(url).raise_for_status()
        samples = []
        for _ in range(count):
            began = time.perf_counter()
            client.get(url)
            samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def warm_install(index: str, packages: list[str], tmp: Path, runs: int = 3) -> float:
    times = []
    for run in range(runs + 1):  # the first run warms every cache and is not counted
        python = fresh_venv(tmp / f"venv-{run}-{time.monotonic_ns()}")
        began = time.perf_counter()
        result = pip(["--python", str(python), "install", "--no-deps", "--index-url", index, *packages], tmp)
        elapsed = time.perf_counter() - began
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
        if run:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench/pypi.py needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        upstream = Upstream(tmp / "upstream")
        upstream.add(Release("small", "1.0"), Release("small", "1.1"), Release("small", "1.2", kind="sdist"))
        upstream.add(*(Release("bigproj", f"1.{i}") for i in range(BIG_FILES)))
        names = [f"pkg{i:02d}" for i in range(INSTALL_PACKAGES)]
        upstream.add(*(Release(name, "1.0", payload=bytes(20_000)) for name in names))
        upstream.publish()
        static = StaticServer(upstream.root).start()
        allowlists = tmp / "allowlists"
        allowlists.mkdir(parents=True)
        entries = "".join(
            f"  - {{name: {n}, environments: [prod], reason: bench, owner: bench}}\n"
            for n in ["small", "bigproj", *names]
        )
        (allowlists / "pypi.yaml").write_text(f"ecosystem: pypi\nenvironments: {{prod: {{}}}}\npackages:\n{entries}")
        try:
            print(
                f"{'page':<22}{'server':<22}{'median ms':>10}{'p99 ms':>9}{'req/s':>9}   vs devpi: latency, throughput"
            )
            static_rows = {}
            for label, ttl in (("airlock", "2"), ("airlock, page TTL 0", "0")):
                work = tmp / f"airlock-ttl{ttl}"
                airlock = AirlockProcess(
                    work,
                    {
                        "AIRLOCK_PYPI_UPSTREAM": f"{static.url}/simple/",
                        "AIRLOCK_DATA_DIR": str(work / "data"),
                        "AIRLOCK_ALLOWLISTS": str(allowlists),
                        "AIRLOCK_LOG_FORMAT": "text",
                        "AIRLOCK_PYPI_PAGE_TTL": ttl,
                    },
                ).start()
                try:
                    devpi = httpx.get(f"{airlock.url}/readyz").json()["parts"]["devpi"]["url"]
                    for project in ("small", "bigproj"):
                        targets = {
                            label: (f"{airlock.url}/pypi/prod/simple/{project}/", JSON_V1),
                            "devpi": (f"{devpi}/root/upstream/+simple/{project}/", JSON_V1),
                        }
                        if project not in static_rows:
                            targets["static"] = (f"{static.url}/simple/{project}/", "text/html")
                        results = {
                            name: (*latencies(url, accept), throughput(url, accept))
                            for name, (url, accept) in targets.items()
                        }
                        static_rows.setdefault(project, results.get("static"))
                        base_median, _, base_rps = results["devpi"]
                        for name, (median, p99, rps) in results.items():
                            page = f"{project} ({3 if project == 'small' else BIG_FILES} files)"
                            print(
                                f"{page:<22}{name:<22}{median:>10.2f}{p99:>9.2f}{rps:>9.0f}   {median / base_median:.2f}x, {rps / base_rps:.0%}"
                            )
                    if ttl != "0":
                        through_airlock = warm_install(f"{airlock.url}/pypi/prod/simple/", names, tmp)
                        through_static = warm_install(f"{static.url}/simple/", names, tmp)
                        install_line = (
                            f"warm pip install of {INSTALL_PACKAGES} packages: airlock {through_airlock:.2f} s, "
                            f"static {through_static:.2f} s = {through_airlock / through_static:.2f}x  (goal <= 1.2x)"
                        )
                finally:
                    airlock.stop()
            print(install_line)
        finally:
            static.stop()


if __name__ == "__main__":
    main()
