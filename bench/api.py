"""Benchmark: the exception API on SQLite and on PostgreSQL, and approval -> installable time.

For each backend: requests/s and latency percentiles (wrk, 4 connections, 5 s) of
`GET /api/v1/exceptions` (list, 100 rows) and `POST /api/v1/exceptions` (create, with its
pre-checks), then the time from an approval's response until pip's index lists the package.
Baseline in the same run: `GET /healthz` (the bare web stack, no database).
Goals (issue 5): >= 500 req/s for reads, p99 < 50 ms, propagation <= 2 s.

    .venv/bin/python bench/api.py            (needs wrk and Debian's postgresql)
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.worlds import quarantined, start_api_world

BODY = {
    "ecosystem": "pypi",
    "package": "kappa",
    "versions": ">=1.0",
    "environments": ["prod"],
    "project": "churn-model",
    "justification": "benchmark request for the churn model pipeline",
}


def wrk(url: str, token: str, tmp: Path, body: dict | None = None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    script = tmp / "request.lua"
    lines = [f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(json.dumps(body))}",
        ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", "-c4", "-d5s", "--latency", "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: failed responses\n{out}")

    def percentile(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), percentile("50"), percentile("99")


def propagation(world, runs: int = 5) -> float:
    alice, lead = world.token("data-scientist", "alice"), world.token("project-lead", "lena")
    times = []
    for _ in range(runs):
        request_id = world.call("POST", "/api/v1/exceptions", alice, {**BODY, "package": "mu"}).json()["id"]
        world.call("POST", f"/api/v1/exceptions/{request_id}/approve", lead, {"comment": "bench"})
        began = time.perf_counter()
        while quarantined(httpx.get(f"{world.url}/pypi/prod/simple/mu/")):
            time.sleep(0.01)
        times.append(time.perf_counter() - began)
        world.call("POST", f"/api/v1/exceptions/{request_id}/revoke", lead, {"comment": "bench"})
        while not quarantined(httpx.get(f"{world.url}/pypi/prod/simple/mu/")):  # PEP 792: refused, not 404
            time.sleep(0.01)
    return statistics.median(times)


def main() -> None:
    print(f"{'backend':<11}{'route':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}   vs /healthz req/s")
    for backend in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            world = start_api_world(tmp, backend)
            try:
                token = world.token("data-scientist", "alice")
                for _ in range(100):
                    world.call("POST", "/api/v1/exceptions", token, BODY)
                baseline = wrk(f"{world.url}/healthz", token, tmp)
                rows = {
                    "GET /healthz (baseline)": baseline,
                    "GET exceptions (100 rows)": wrk(f"{world.url}/api/v1/exceptions", token, tmp),
                    "GET exceptions (20 rows)": wrk(f"{world.url}/api/v1/exceptions?limit=20", token, tmp),
                    "GET exceptions/{id}": wrk(f"{world.url}/api/v1/exceptions/1", token, tmp),
                    "POST exceptions (create)": wrk(f"{world.url}/api/v1/exceptions", token, tmp, BODY),
                }
                for route, (rps, p50, p99) in rows.items():
                    print(
                        f"{backend:<11}{route:<26}{rps:>8.0f}{p50:>9.2f}{p99:>9.2f}   {rps / baseline[0]:.0%}",
                        flush=True,
                    )
                print(f"{backend:<11}approval -> pip sees it: {propagation(world):.3f} s median of 5 (goal <= 2 s)")
            finally:
                world.stop()


if __name__ == "__main__":
    main()
