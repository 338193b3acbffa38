"""Benchmark: what conditions (min_age, block_vulnerable, block_malicious, licenses) cost.

1. A PyPI project page of 2,000 files filtered and rendered for an environment, without
   conditions (baseline, same run) and with all four: the ratio (goal <= 1.05).
2. A conda channel's selection over 20,000 repodata records, without and with conditions (goal <= 1.10).
3. Re-evaluation after one new advisory over 100,000 allowlisted versions (1,000 projects x 100
   releases Airlock knows): rebuilding the allowlist with the new feed plus computing what became
   withheld (`policy.changed`) (goal <= 2 s).

    .venv/bin/python bench/conditions.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.conda.channel import select
from mirror.exposure import newly_withheld
from mirror.policy import build_allowlist, load_policy_files
from mirror.policy.advisories import index_documents
from mirror.policy.conda import CondaChannel
from mirror.pypi.filtering import rendered
from mirror.pypi.pages import CachedPage
from mirror.pypi.simple import JSON_V1, FileLink, ProjectPage

NOW = datetime.now(UTC)
CONDITIONS = (
    "    min_age: 7d\n    block_vulnerable: high\n    block_malicious: true\n    licenses: {deny: [AGPL-3.0-only]}\n"
)


def best(work, rounds: int = 15) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pypi_policy(conditions: bool, names: list[str]) -> str:
    head = "ecosystem: pypi\nenvironments:\n  prod:\n" + (
        CONDITIONS if conditions else "    {}\n".replace("    {}", "    description: plain")
    )
    return (
        head + "packages:\n" + "".join(f"  - {{name: {n}, environments: [prod], reason: r, owner: o}}\n" for n in names)
    )


def page_ratio() -> str:
    files = tuple(
        FileLink(
            f"bigproj-{v // 4}.{v % 4}-py3-none-any.whl",
            f"{v:03x}/{v:013x}/bigproj-{v // 4}.{v % 4}-py3-none-any.whl",
            f"{v:064x}",
            None,
            False,
            size=1000,
            upload_time=(NOW - timedelta(days=2000 - v)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        )
        for v in range(2000)
    )
    page = ProjectPage("bigproj", files)
    advisories = index_documents([("a.json", _osv("GHSA-1", "bigproj", "0.2", "HIGH"))])  # withholds 2 versions
    warm, cold = {}, {}
    for conditions in (False, True):
        policy = load_policy_files([("allowlists/pypi.yaml", pypi_policy(conditions, ["bigproj"]))], NOW)
        allowlist = build_allowlist(policy, (), NOW, advisories)
        warm[conditions] = best(
            lambda allowlist=allowlist: rendered(CachedPage(page, 0.0), allowlist, "prod", "bigproj", JSON_V1, NOW)
        )
        cold[conditions] = best(  # a new allowlist each time: no release judged before
            lambda policy=policy: rendered(
                CachedPage(page, 0.0), build_allowlist(policy, (), NOW, advisories), "prod", "bigproj", JSON_V1, NOW
            )
        )
    return (
        f"page of 2000 files: {warm[True] * 1000:.2f} ms with conditions vs {warm[False] * 1000:.2f} ms without "
        f"= {warm[True] / warm[False]:.2f}x (goal <= 1.05); first render after an allowlist change "
        f"{cold[True] * 1000:.2f} vs {cold[False] * 1000:.2f} ms = {cold[True] / cold[False]:.2f}x"
    )


def conda_ratio() -> str:
    records = {
        f"pkg{n % 500}-1.{n}-0.conda": {
            "name": f"pkg{n % 500}",
            "version": f"1.{n}",
            "build": "0",
            "sha256": f"{n:064x}",
            "size": 100,
            "timestamp": int((NOW - timedelta(days=30)).timestamp() * 1000),
            "license": "MIT",
        }
        for n in range(20_000)
    }
    upstream = {("conda-forge", "noarch"): {"packages.conda": records}}
    channels = {"conda-forge": CondaChannel("conda-forge", "http://127.0.0.1:9/conda-forge", ("noarch",))}
    entries = "".join(f"  - {{spec: pkg{n}, environments: [prod], reason: r, owner: o}}\n" for n in range(500))
    timings = {}
    for conditions in (False, True):
        text = (
            "ecosystem: conda\nenvironments:\n  prod:\n"
            + ("    min_age: 7d\n    licenses: {deny: [AGPL-3.0-only]}\n" if conditions else "    description: plain\n")
            + "channels:\n  conda-forge: {url: http://127.0.0.1:9/conda-forge, subdirs: [noarch]}\npackages:\n"
            + entries
        )
        allowlist = build_allowlist(load_policy_files([("allowlists/conda.yaml", text)], NOW), (), NOW)
        timings[conditions] = best(lambda allowlist=allowlist: select(allowlist, "prod", channels, upstream), rounds=5)
    return (
        f"conda selection of 20000 records: {timings[True] * 1000:.1f} ms with conditions vs "
        f"{timings[False] * 1000:.1f} ms without = {timings[True] / timings[False]:.2f}x (goal <= 1.10)"
    )


def reevaluation() -> str:
    names = [f"proj{n}" for n in range(1000)]
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        upstream = data / "pypi" / "upstream"
        upstream.mkdir(parents=True)
        for name in names:
            files = [
                {
                    "filename": f"{name}-{v}.0-py3-none-any.whl",
                    "url": "http://127.0.0.1:9/x",
                    "upload_time": (NOW - timedelta(days=400 - v)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                }
                for v in range(100)
            ]
            (upstream / f"{name}.json").write_text(json.dumps({"name": name, "files": files}))
        policy = load_policy_files([("allowlists/pypi.yaml", pypi_policy(True, names))], NOW)
        feed = [(f"{n}.json", _osv(f"GHSA-{n}", names[n], "50.0", "LOW")) for n in range(200)]
        before = build_allowlist(policy, (), NOW, index_documents(feed))
        started = time.perf_counter()
        after = build_allowlist(
            policy, (), NOW, index_documents(feed + [("new.json", _osv("GHSA-new", "proj7", "60.0", "CRITICAL"))])
        )
        changes = newly_withheld(before, after, data, NOW)
        elapsed = time.perf_counter() - started
    withheld = sum(len(change["versions"]) for change in changes)
    return f"re-evaluation after one new advisory over 100000 versions: {elapsed:.3f} s, {withheld} version(s) newly withheld (goal <= 2 s)"


def _osv(record_id: str, package: str, fixed: str, severity: str) -> dict:
    return {
        "id": record_id,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
        "database_specific": {"severity": severity},
    }


if __name__ == "__main__":
    print(page_ratio())
    print(conda_ratio())
    print(reevaluation())
