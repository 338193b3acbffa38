"""Benchmark: the policy core with 100,000 generated rules.

Prints load time, and the median cost of `decide` for a first-time and a repeated question, each
as a ratio to a bare `dict` lookup of a canonical name measured in the same run.
Goals (issue 2): load <= 1 s; first-time decide <= 10 us; repeated <= 1 us.

    .venv/bin/python bench/allowlist.py [--rules 100000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.allowlist_files import load_allowlist

BATCH = 1000


def generate(rules: int) -> str:
    """One pypi.yaml with `rules` entries in the block style reviewers write, mixed specifiers."""
    ranges = [">=1.0,<2", ">=2.1,<3", "==1.4.*", "~=3.2", ">=0.9", "<5,!=4.0.1", None]
    lines = ["ecosystem: pypi", "environments:", "  prod: {}", "  preprod: {extends: prod}", "packages:"]
    for i in range(rules):
        lines.append(f"  - name: Project_{i}")
        spec = ranges[i % len(ranges)]
        if spec:
            lines.append(f'    versions: "{spec}"')
        lines.append(f"    environments: [{'prod' if i % 3 else 'preprod'}]")
        lines.append(f"    reason: generated rule {i}")
        lines.append("    owner: bench")
    return "\n".join(lines) + "\n"


def per_call_ns(function, arguments: list[tuple], batch: int = BATCH) -> float:
    """Median over batches of the mean cost of one call, in ns (timer overhead amortised)."""
    means = []
    for start in range(0, len(arguments) - batch + 1, batch):
        chunk = arguments[start : start + batch]
        began = time.perf_counter_ns()
        for args in chunk:
            function(*args)
        means.append((time.perf_counter_ns() - began) / batch)
    return statistics.median(means)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=50_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    text = generate(args.rules)

    loads = []
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pypi.yaml").write_text(text)
        for _ in range(3):  # what the service does on start and on every edit: read, validate, index
            began = time.perf_counter()
            allowlist = load_allowlist([folder], now=now)
            loads.append(time.perf_counter() - began)
    load_s = statistics.median(loads)

    rng = random.Random(7)
    versions = ["1.0", "1.5.2", "2.2", "1.4.7", "3.2.9", "0.9", "4.0.1", "2.0rc1", "1.0+cpu"]
    spellings = ["Project_{}", "project-{}", "PROJECT.{}"]
    first = [
        ("pypi", "prod" if i % 2 else "preprod", rng.choice(spellings).format(rng.randrange(args.rules)), f"{v}.{i}")
        for i, v in ((i, rng.choice(versions)) for i in range(args.questions))
    ]
    # Make every first-time question distinct: the memo must not help.
    first = list(dict.fromkeys(first))
    repeated = [first[i % 100] for i in range(args.questions)]

    table = {f"project-{i}": i for i in range(args.rules)}
    names = [(f"project-{rng.randrange(args.rules)}",) for _ in range(args.questions)]
    dict_ns = per_call_ns(table.__getitem__, names)

    decide = allowlist.decide
    first_ns = per_call_ns(decide, first)
    for question in repeated[:100]:
        decide(*question)
    repeated_ns = per_call_ns(decide, repeated)

    allowed = sum(decide(*q).allowed for q in first)
    print(
        f"rules: {args.rules:,}; questions: {len(first):,} first-time ({allowed:,} allowed), {len(repeated):,} repeated"
    )
    print(f"load (read + parse + validate + index): {load_s:.3f} s  (goal <= 1 s; {len(text) / 1e6:.1f} MB of YAML)")
    print(f"dict lookup baseline:            {dict_ns:8.1f} ns")
    print(f"decide, first-time question:     {first_ns:8.1f} ns  = {first_ns / dict_ns:6.1f}x dict  (goal <= 10 us)")
    print(
        f"decide, repeated question:       {repeated_ns:8.1f} ns  = {repeated_ns / dict_ns:6.1f}x dict  (goal <= 1 us)"
    )


if __name__ == "__main__":
    main()
