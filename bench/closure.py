"""Benchmark: `airlock allowlist closure` of the shipped allowlists vs `uv pip compile` of the same
top-level set for the same target, in one run, against the public PyPI.

Both run warm (the upstream's pages and the packages' metadata in their caches: a first run of each
fills them), three times each, interleaved; medians printed. Goals (issue 18): closure <= 10 s and
<= 1.5x uv pip compile.

    .venv/bin/python bench/closure.py [--env prod]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mirror.allowlist_files import load_allowlist  # noqa: E402
from mirror.closure.pypi import roots  # noqa: E402
from mirror.policy import Ecosystem  # noqa: E402

BIN = Path(sys.executable).parent
RUNS = 3


def timed(command: list[str], env: dict[str, str], stdin: str | None = None, accept: tuple[int, ...] = (0,)) -> float:
    began = time.perf_counter()
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    if result.returncode not in accept:
        raise SystemExit(f"{command[:4]} exited {result.returncode}: {result.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="prod")
    args = parser.parse_args()
    allowlist = load_allowlist([REPO / "allowlists"])
    [target] = allowlist.policy.files[Ecosystem.PYPI].targets_of(args.env).each()[:1]
    entries = sorted(roots(allowlist, args.env))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    with tempfile.TemporaryDirectory(prefix="bench-closure-") as tmp:
        ours_env = {**clean, "AIRLOCK_DATA_DIR": f"{tmp}/data"}
        uv_env = {**clean, "UV_NO_CONFIG": "1", "UV_CACHE_DIR": f"{tmp}/uv-cache", "UV_PYTHON_DOWNLOADS": "never"}
        closure = [str(BIN / "airlock"), "allowlist", "closure", "--env", args.env, "--json"]
        compile_ = [
            str(BIN / "uv"),
            "pip",
            "compile",
            "-",
            "--index-url",
            "https://pypi.org/simple/",
            "--python-version",
            target.python,
            "--python-platform",
            target.uv_platform,
            "--no-header",
            "-q",
        ]
        cold_ours = timed(closure, ours_env, accept=(0, 1))
        cold_uv = timed(compile_, uv_env, "\n".join(entries))
        ours, theirs = [], []
        for _ in range(RUNS):
            ours.append(timed(closure, ours_env, accept=(0, 1)))
            theirs.append(timed(compile_, uv_env, "\n".join(entries)))
    mine, base = statistics.median(ours), statistics.median(theirs)
    print(f"closure of allowlists/pypi.yaml {args.env}: {len(entries)} entries, target {target}")
    print(f"  first runs (caches filled):     airlock {cold_ours:.2f} s, uv pip compile {cold_uv:.2f} s")
    print(f"  uv pip compile, warm:           {base:.2f} s   (median of {RUNS})")
    print(
        f"  airlock allowlist closure, warm: {mine:.2f} s   = {mine / base:.2f}x uv pip compile   (goals <= 10 s, <= 1.5x)"
    )


if __name__ == "__main__":
    main()
