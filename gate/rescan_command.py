"""`airlock-gate rescan`: the images that passed, judged again against today's DB (`gate.rescan`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import timedelta

from gate.errors import GateError

EXIT_OK, EXIT_WOULD_FAIL, EXIT_UNDECIDED = 0, 1, 2
_SINCE = re.compile(r"^(\d{1,4})([dh])$")


def run_rescan_command(args: argparse.Namespace) -> int:
    from gate.decision import record_verdict
    from gate.policy_source import ServerClient
    from gate.rescan import as_verdict, kept_root, rescan
    from gate.scanner.process import find_trivy
    from mirror.terminal import render_table

    match = _SINCE.match(args.since)
    if match is None:
        print(f"airlock-gate: --since {args.since!r}: write e.g. 30d or 12h", file=sys.stderr)
        return EXIT_UNDECIDED
    amount = int(match.group(1))
    since = timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
    root = kept_root()
    print(f"airlock-gate: rescanning the images that passed in the last {args.since} ({root}) ...", file=sys.stderr)
    try:
        results = rescan(root, since, args.db, args.allowlists, args.waivers, find_trivy(args.trivy), args.timeout)
        server = None
        if args.server:
            import httpx

            server = ServerClient(args.server, os.environ.get("AIRLOCK_TOKEN"), httpx.Client(timeout=30))
        recorded = {}
        for result in results:
            if result.newly_failing:  # once per image: its audit record, and the server's webhook
                recorded[result.folder] = record_verdict(as_verdict(result), server).audit_id
    except GateError as exc:
        print(f"airlock-gate: could not rescan: {exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    failing = [r for r in results if r.failures]
    if args.format == "json":
        print(json.dumps({"rescanned": len(results), "would_fail": [r.as_dict() for r in failing]}, indent=2))
    else:
        if failing:
            rows = [
                [
                    r.image,
                    r.environment,
                    r.decided_at,
                    "yes" if r.newly_failing else "no",
                    "; ".join(f"{f.title}: {f.reason}" for f in r.failures[:3]) + (" …" if len(r.failures) > 3 else ""),
                ]
                for r in failing
            ]
            print(render_table(["IMAGE", "ENV", "PASSED AT", "NEW", "WOULD FAIL NOW ON"], rows))
        print(f"{len(results)} passed image(s) rescanned; {len(failing)} would fail today")
    return EXIT_WOULD_FAIL if failing else EXIT_OK
