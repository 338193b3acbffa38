"""`airlock-gate`: the deployment gate's command line (scan arrives with the gate issue)."""

from __future__ import annotations

import argparse
import sys

EXIT_PASS, EXIT_FAIL, EXIT_UNDECIDED = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airlock-gate", description="Airlock's deployment gate.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("scan", help="scan a built image and pass or discard it (not yet available)")
    args = parser.parse_args(argv)
    # Fail closed: until the scanner lands, the gate cannot decide, so nothing may deploy on it.
    print(f"airlock-gate: {args.command} is not available in this version; the image was not vetted", file=sys.stderr)
    return EXIT_UNDECIDED


if __name__ == "__main__":
    sys.exit(main())
