"""Benchmark: what a caller without a token can make a running Airlock spend (issue 20).

Against `airlock up` (SQLite, a local PyPI-like upstream), measured from outside as an attacker
would: the server's resident memory (VmRSS of its process), the time to an answer, and the audit
records added. Figures, with the issue's goals beside them; nothing is asserted.

1. 3,000 GETs of distinct file names of 59 KiB under /pypi/prod/files/…  (RSS growth; goal < 20 MiB)
2. 100 POSTs of 30 MiB to /api/v1/gate/decisions without a token    (time to 401, goal < 50 ms each;
   RSS growth, goal < 20 MiB)
3. 1,000 requests with a well-formed but unknown token            (audit records added; goal <= 5)

    .venv/bin/python bench/abuse.py
"""

from __future__ import annotations

import contextlib
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.measure import rss_mib
from testkit.worlds import last_audit_seq, start_api_world

MIB = 1 << 20


def long_names(base: str, pid: int) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    before = rss_mib(pid)
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(3000):
            name = f"{n:06d}" + "a" * (59 * 1024) + "-1.0-py3-none-any.whl"
            status = client.get(f"/pypi/prod/files/alpha/{name}").status_code
            statuses[status] = statuses.get(status, 0) + 1
    return rss_mib(pid) - before, statuses


def unauthenticated_post(base: str, size: int) -> tuple[float, bytes]:
    """Seconds from the first byte sent to the first byte of the answer, sending the body as fast as
    the server takes it (an answer that waits for the whole body waits for all 30 MiB)."""
    parts = urlsplit(base)
    chunk = b"0" * (256 * 1024)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        started = time.perf_counter()
        connection.sendall(
            f"POST /api/v1/gate/decisions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        sent = 0
        connection.setblocking(False)
        while True:
            readable, writable, _ = select.select([connection], [connection] if sent < size else [], [], 60)
            if readable:
                answer = connection.recv(4096)
                return time.perf_counter() - started, answer.split(b"\r\n", 1)[0]
            if writable:
                with contextlib.suppress(BlockingIOError):
                    sent += connection.send(chunk[: size - sent])
            if not readable and not writable:
                raise TimeoutError("no answer within 60 s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="airlock-abuse-") as folder:
        world = start_api_world(Path(folder), "sqlite")
        try:
            pid = world.pypi.airlock.process.pid
            base = world.url
            httpx.get(f"{base}/pypi/prod/simple/alpha/", timeout=60)  # warm the routes once
            print(f"server RSS at start: {rss_mib(pid):.1f} MiB")

            growth, statuses = long_names(base, pid)
            print(
                f"3000 distinct 59 KiB file names: RSS +{growth:.1f} MiB (goal < 20 MiB); "
                f"answers {dict(sorted(statuses.items()))}"
            )

            before = rss_mib(pid)
            times, answers = [], set()
            for _ in range(100):
                seconds, status_line = unauthenticated_post(base, 30 * MIB)
                times.append(seconds)
                answers.add(status_line.decode(errors="replace"))
            print(
                f"100 unauthenticated 30 MiB POSTs: time to answer median {statistics.median(times) * 1000:.1f} ms, "
                f"max {max(times) * 1000:.1f} ms (goal < 50 ms each); RSS +{rss_mib(pid) - before:.1f} MiB "
                f"(goal < 20 MiB); answers {sorted(answers)}"
            )

            time.sleep(6)  # earlier refusals' summaries are written (window 5 s in this world)
            records = last_audit_seq(world.database_url)
            with httpx.Client(base_url=base, timeout=30) as client:
                for n in range(1000):
                    token = f"alk_{n:012x}_" + "z" * 43
                    client.get("/api/v1/exceptions", headers={"Authorization": f"Bearer {token}"})
            time.sleep(6)
            print(
                f"1000 bad-token requests: audit records added {last_audit_seq(world.database_url) - records} (goal <= 5)"
            )
        finally:
            world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
