"""Benchmark: the web UI's approver queue with 1,000 pending requests (issue 22: goal <= 100 ms).

Against `airlock up` (SQLite): 1,000 pending requests for one project, a project lead signed in
through the UI; the median of 30 GETs of `/ui/queue` (50 cards a page, the count of all 1,000),
measured from the client on loopback (server time plus a loopback round trip). Baseline in the
same run: `GET /healthz` (the bare web stack).

    .venv/bin/python bench/ui.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.store.db import Database
from mirror.store.models import ExceptionRequest
from testkit.worlds import start_api_world

CHECKS = [
    {"name": n, "status": "pass", "detail": "ok"} for n in ("typosquat", "upstream", "vulnerabilities", "licence")
]


def median_ms(client: httpx.Client, path: str, rounds: int = 30) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times) * 1000


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="airlock-ui-bench-") as folder:
        world = start_api_world(Path(folder), "sqlite")
        try:
            database = Database(world.database_url)
            now = datetime.now(UTC)
            with database.transaction() as session:
                session.add_all(
                    ExceptionRequest(
                        ecosystem="pypi",
                        package=f"pkg{n}",
                        versions=">=1.0",
                        environments=["prod"],
                        project="churn-model",
                        justification="a benchmark request with a sentence of justification",
                        duration_days=30,
                        requested_by=f"user{n % 20}",
                        requested_at=now,
                        status="pending",
                        prechecks=CHECKS,
                    )
                    for n in range(1000)
                )
            database.dispose()
            token = world.token("project-lead", "lena")
            with httpx.Client(base_url=world.url, timeout=30, follow_redirects=False) as client:
                form = client.get("/ui/sign-in")
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
                signed = client.post("/ui/sign-in", data={"token": token, "csrf": csrf})
                assert signed.status_code == 303, signed.text
                first = client.get("/ui/queue")
                assert "Waiting for a decision" in first.text and "1000" in first.text, first.text[:500]
                queue = median_ms(client, "/ui/queue")
                baseline = median_ms(client, "/healthz")
            print(
                f"approver queue with 1000 pending: {queue:.1f} ms median (goal <= 100 ms); "
                f"/healthz {baseline:.1f} ms; ratio {queue / baseline:.1f}x"
            )
        finally:
            world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
