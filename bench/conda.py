"""Benchmark: curated conda channel sync + index vs conda-index alone, all in one run.

2,000 generated packages (500 names x 4 versions, linux-64) in an upstream channel on a static
server that keeps connections open, as conda-forge's CDN does (`testkit.static_http`; with
`python -m http.server` each file costs a TCP handshake and a server thread, CPU that an upstream
spends on its own machine but here takes from Airlock's two cores: cold sync 5.6 s against 5.2 s).
Airlock: cold `sync` (fetch repodata, download + verify every file, stage, conda-index, check,
publish), then the update after one more package is approved. Baselines on the same files:
`python -m conda_index` alone, cold and after adding one file, as it runs by default (a worker
process per core) and in one process (`--threads 1`, how Airlock runs it for small packages);
rattler's indexer as a reference. Goals (issue 4): Airlock <= 1.2x conda-index; one-package update
live in <= 2 s.

Scratch files go to $TMPDIR (default /tmp): on a disk whose /tmp has seen heavy churn, creating a
file can cost 20x what it costs elsewhere on the same disk, which weighs on Airlock (it writes
every package twice: cache and staging link) more than on conda-index alone.

    .venv/bin/python bench/conda.py
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import rattler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.conda.channel import CondaSync
from mirror.conda.indexer import index_subdirs
from mirror.policy import build_allowlist, load_policy_files
from testkit.conda import CondaChannelDir, CondaPackage
from testkit.servers import StaticServer

NAMES, VERSIONS = 500, 4
ROUNDS = 2
"""Cold runs of each side, in the order Airlock, conda-index, conda-index, Airlock; means are shown.
On these shared VMs the cost of creating a file drifts from minute to minute, so one run of each
side, always in the same order, measured the drift as much as the difference."""


def allowlist_for(url: str, names: list[str]):
    entries = "".join(f'  - {{spec: "{n}", environments: [prod], reason: bench, owner: bench}}\n' for n in names)
    text = (
        f"ecosystem: conda\nenvironments: {{prod: {{}}}}\nchannels:\n  conda-forge: {{url: {url}, subdirs: [noarch, linux-64]}}\n"
        f"packages:\n{entries}"
    )
    now = datetime.now(UTC)
    return build_allowlist(load_policy_files([("allowlists/conda.yaml", text)], now), (), now)


def timed(function) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


class ColdRuns:
    """Cold syncs through Airlock and cold conda-index runs over the same files, each in its own folder."""

    def __init__(self, tmp: Path, upstream: Path, allowlist, client: httpx.Client) -> None:
        self.tmp, self.upstream, self.allowlist, self.client = tmp, upstream, allowlist, client
        self.sync, self.live, self.default, self.single = [], [], [], []

    def airlock(self, number: int) -> None:
        began = time.perf_counter()
        report = CondaSync(self.tmp / f"airlock{number}", self.client).run(self.allowlist)
        self.sync.append(time.perf_counter() - began)
        self.live.append(report.live_after)

    def conda_index(self, number: int) -> None:
        """By default (a worker process per core), then in one process, each on a fresh copy."""
        plain, single = self.tmp / f"plain{number}", self.tmp / f"in-process{number}"
        shutil.copytree(self.upstream / "linux-64", plain / "linux-64", ignore=shutil.ignore_patterns("repodata.json"))
        (plain / "noarch").mkdir()
        shutil.copytree(plain, single)
        self.default.append(
            timed(lambda: index_subdirs(plain, ["linux-64", "noarch"], self.tmp / f"plain-out{number}"))
        )
        self.single.append(
            timed(
                lambda: index_subdirs(single, ["linux-64", "noarch"], self.tmp / f"in-process-out{number}", threads=1)
            )
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        upstream = CondaChannelDir(tmp / "upstream")
        names = [f"pkg{i:03d}" for i in range(NAMES)]
        upstream.add(*(CondaPackage(n, f"1.{v}", "h_0") for n in names for v in range(VERSIONS)))
        upstream.publish()
        server = StaticServer(upstream.root, keep_alive=True).start()
        try:
            allowlist = allowlist_for(server.url, names)
            data, plain, in_process = tmp / "airlock0", tmp / "plain0", tmp / "in-process0"
            with httpx.Client(timeout=60) as client:
                runs = ColdRuns(tmp, upstream.root, allowlist, client)
                for number in range(ROUNDS):
                    sides = (runs.airlock, runs.conda_index) if number % 2 == 0 else (runs.conda_index, runs.airlock)
                    for side in sides:
                        side(number)
                # The same, with every file already downloaded and verified: stage, index, check, publish.
                warm_data = tmp / "airlock-cached"
                shutil.copytree(data / "conda" / "cache", warm_data / "conda" / "cache")
                began = time.perf_counter()
                cached_report = CondaSync(warm_data, client).run(allowlist)
                cached = time.perf_counter() - began
                rattler_copy = tmp / "rattler"
                shutil.copytree(plain, rattler_copy, ignore=shutil.ignore_patterns(".cache"))
                rattler_cold = timed(lambda: asyncio.run(rattler.index.index_fs(rattler_copy)))

                # One more package is approved: it appears upstream and in the allowlist.
                upstream.add(CondaPackage("approved", "1.0", "h_0"))
                upstream.publish()
                allowlist = allowlist_for(server.url, names + ["approved"])
                began = time.perf_counter()
                update_report = CondaSync(data, client).run(allowlist)
                update = time.perf_counter() - began
                shutil.copy(upstream.root / "linux-64" / "approved-1.0-h_0.tar.bz2", plain / "linux-64")
                shutil.copy(upstream.root / "linux-64" / "approved-1.0-h_0.tar.bz2", in_process / "linux-64")
                index_update = timed(lambda: index_subdirs(plain, ["linux-64"], tmp / "plain-out0"))
                index_update_single = timed(
                    lambda: index_subdirs(in_process, ["linux-64"], tmp / "in-process-out0", threads=1)
                )
            served = (data / "conda" / "prod" / "conda-forge" / "linux-64" / "repodata.json").read_text()
            assert "approved-1.0-h_0.tar.bz2" in served
        finally:
            server.stop()
    total = NAMES * VERSIONS
    cold, live, index_cold, index_cold_single = mean(runs.sync), mean(runs.live), mean(runs.default), mean(runs.single)
    print(
        f"{total:,} packages (linux-64), {NAMES} allowlist entries; cold figures are means of {ROUNDS} runs, "
        f"in the order Airlock, conda-index, conda-index, Airlock"
    )
    print(
        f"conda-index alone, cold: {index_cold:.2f} s by default, {index_cold_single:.2f} s in one process;"
        f" after one more file: {index_update:.2f} s / {index_update_single:.2f} s; rattler index (cold) {rattler_cold:.2f} s"
    )

    def ratios(seconds: float, default: float, single: float) -> str:
        return f"{seconds / default:.2f}x conda-index's default, {seconds / single:.2f}x in one process"

    print(
        f"cold:   airlock sync (download+verify+index+publish+solve checks) {cold:6.2f} s = {ratios(cold, index_cold, index_cold_single)}"
    )
    print(f"        live after {live:.2f} s = {ratios(live, index_cold, index_cold_single)}  (goal <= 1.2x)")
    print(
        "        each run: airlock "
        + ", ".join(f"{s:.2f}" for s in runs.sync)
        + " s; conda-index "
        + ", ".join(f"{s:.2f}" for s in runs.default)
        + " s by default, "
        + ", ".join(f"{s:.2f}" for s in runs.single)
        + " s in one process"
    )
    print(
        f"cold, files already cached:   {cached:6.2f} s, live after {cached_report.live_after:.2f} s"
        f" = {ratios(cached_report.live_after, index_cold, index_cold_single)}"
    )
    print(
        f"update: airlock sync after one approval {update:6.2f} s = {ratios(update, index_update, index_update_single)};"
        f" live after {update_report.live_after:.2f} s  (goal: live in <= 2 s)"
    )


if __name__ == "__main__":
    main()
