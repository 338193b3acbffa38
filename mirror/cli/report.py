"""`airlock report exposure`: allowlist entries whose ranges hold versions a condition withholds
now (known vulnerabilities, malicious reports), with the nearest version still served — so that
owners tighten their ranges instead of users meeting a withheld file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirror.clock import utc_now
from mirror.terminal import render_table

EXIT_OK, EXIT_EXPOSED, EXIT_BAD_INPUT = 0, 1, 2


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="reports over the allowlists and what Airlock knows")
    kinds = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    exposure = kinds.add_parser(
        "exposure", help="entries whose allowed ranges hold versions a condition now withholds (exit 1 if any)"
    )
    exposure.add_argument("--env", required=True, help="environment, e.g. prod")
    exposure.add_argument("--config", metavar="FILE", help="airlock.toml (data dir, allowlists, advisories)")
    exposure.add_argument("--json", action="store_true", help="print the report as JSON")
    exposure.set_defaults(handler=run_exposure)


def run_exposure(args: argparse.Namespace) -> int:
    from mirror.advisory_feed import load_advisories
    from mirror.allowlist_files import load_allowlist
    from mirror.exposure import exposure_of
    from mirror.policy import InvalidAllowlist, UnknownEnvironment
    from mirror.settings import ConfigurationError, load_settings

    try:
        settings = load_settings(args.config)
        if settings.advisories is None:
            raise ValueError("AIRLOCK_ADVISORIES is not set: the report needs the advisories conditions read")
        allowlist = load_allowlist([settings.allowlists], advisories=load_advisories(Path(settings.advisories)))
        found = exposure_of(allowlist, args.env, settings.data_dir, utc_now())
    except (ConfigurationError, ValueError, InvalidAllowlist, UnknownEnvironment) as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps({"environment": args.env, "exposed": [e.as_dict() for e in found]}, indent=2))
        return EXIT_EXPOSED if found else EXIT_OK
    if not found:
        print(f"no allowlisted version known to Airlock is withheld by a condition in {args.env}")
        return EXIT_OK
    rows = [
        [
            exposure.package,
            exposure.entry,
            exposure.owner or "-",
            ", ".join(w.version for w in exposure.withheld),
            ", ".join(sorted({w.condition for w in exposure.withheld})),
            ", ".join(exposure.advisories) or "-",
            exposure.nearest_allowed or "none",
        ]
        for exposure in found
    ]
    print(render_table(["PACKAGE", "ENTRY", "OWNER", "WITHHELD", "CONDITION", "ADVISORIES", "NEAREST ALLOWED"], rows))
    print(
        f"\n{len(found)} entr{'y' if len(found) == 1 else 'ies'} in {args.env} allow versions a condition withholds: tighten their ranges"
    )
    return EXIT_EXPOSED
