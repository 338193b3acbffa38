"""`airlock` command line: parses arguments, calls the core, maps results to exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from mirror.exiting import leave


def build_parser() -> argparse.ArgumentParser:
    from mirror.cli import allowlist as allowlist_commands
    from mirror.cli import governance as governance_commands
    from mirror.cli import report as report_commands
    from mirror.cli import up as service_commands

    parser = argparse.ArgumentParser(prog="airlock", description="Airlock: the package firewall for ML workspaces.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service_commands.register(commands)
    service_commands.register_sync(commands)
    governance_commands.register(commands)
    report_commands.register(commands)
    allowlist_commands.register(commands, default_folder=os.environ.get("AIRLOCK_ALLOWLISTS", "allowlists"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


def run() -> None:
    """The `airlock` command: `main`, then leave without CPython's teardown.

    py-rattler's solver runs on Rust (tokio) threads that may still hand Python objects back while
    the interpreter finalises, which aborts the process ("PyGILState_Release: thread state must be
    current", exit -6) after the command has done its work.
    """
    leave(main())
