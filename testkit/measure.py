"""What the benchmarks measure with: wrk's throughput, resident memory, disk use."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def throughput(url: str, accept: str | None = None, seconds: int = 5, connections: int = 16) -> float:
    """Requests/s of GET `url` under wrk (2 threads); a run with failed responses or socket errors
    measured something else, so it raises instead."""
    header = ["-H", f"Accept: {accept}"] if accept else []
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", *header, url], capture_output=True, text=True, check=True
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} failed responses")
    if "Socket errors" in out:
        raise RuntimeError(f"{url}: socket errors\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def rss_mib(pid: int, descendants: bool = False) -> float:
    """Resident memory of a process (with `descendants`: and of every process below it — Airlock
    with its devpi and registry caches)."""
    pids, total_kib = [pid], 0
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            if descendants:
                for task in Path(f"/proc/{current}/task").iterdir():
                    pids += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            if current == pid:
                raise RuntimeError(f"no process {pid}") from None
            continue  # a child that ended meanwhile
        match = re.search(r"VmRSS:\s+(\d+)", status)
        if match is None and current == pid:
            raise RuntimeError(f"no VmRSS for {pid}")
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


def du_mib(*paths: Path) -> float:
    """Disk used by `paths` together (`du -sck`)."""
    out = subprocess.run(["du", "-sck", *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0]) / 1024
