"""`airlock allowlist closure` and `airlock allowlist add`: allowlists that install.

    airlock allowlist closure --env prod [--ecosystem pypi|conda] [--json] [--write]
    airlock allowlist add --from requirements.txt --env prod --owner ml-platform --reason "churn model" [--dry-run]

Exit codes: 0 closed (or added), 1 not closed (or bad input, nothing written), 2 could not decide.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirror.allowlist_files import load_allowlist, read_policy_sources
from mirror.clock import utc_now
from mirror.closure.interface import ClosureError, ClosureReport, requirement_specifier
from mirror.closure.writer import EditError, NewEntry, appended, diff, write_whole
from mirror.policy import Ecosystem, InvalidAllowlist, load_policy_files
from mirror.terminal import render_table

EXIT_OK, EXIT_NOT_CLOSED, EXIT_UNDECIDED = 0, 1, 2


def register(sub: argparse._SubParsersAction, default_folder: str) -> None:
    closure = sub.add_parser(
        "closure",
        help="does every allowed entry install through the environment's index? (--write adds what is missing)",
    )
    closure.add_argument("--env", required=True, help="environment, e.g. prod")
    closure.add_argument("--ecosystem", choices=["pypi", "conda"], default="pypi")
    closure.add_argument("--allowlists", default=default_folder, metavar="DIR")
    closure.add_argument("--json", action="store_true", help="print the report as JSON")
    closure.add_argument(
        "--write", action="store_true", help="add the missing entries to the allowlist file (shown as a diff)"
    )
    closure.add_argument(
        "--config", metavar="FILE", help="airlock.toml (the upstream index and data folder come from it)"
    )
    closure.set_defaults(handler=run_closure)

    from mirror.cli import lockfile_import

    lockfile_import.register(sub, default_folder)


def closure_report(allowlist, env: str, ecosystem: str, config: str | None) -> ClosureReport:
    """Run the closure check for one environment; raises ClosureError when it cannot decide."""
    from mirror.settings import ConfigurationError, load_settings

    try:
        settings = load_settings(config)
    except ConfigurationError as exc:
        raise ClosureError(str(exc)) from None
    policy_file = allowlist.policy.files.get(Ecosystem(ecosystem))
    if policy_file is None:
        raise ClosureError(f"no {ecosystem} allowlist file: nothing to check")
    if env not in policy_file.environments:
        raise ClosureError(
            f"unknown environment {env!r} for {ecosystem} (known: {', '.join(policy_file.environments)})"
        )
    cache = settings.data_dir / "closure" / ecosystem
    if ecosystem == "conda":
        from mirror.closure.conda import conda_closure

        return conda_closure(allowlist, env, settings.upstream_timeout)
    from mirror.closure.pypi import pypi_closure

    targets = policy_file.targets_of(env).each()
    print(
        f"airlock: resolving the {env} entries of {policy_file.file} with uv for {', '.join(map(str, targets))} …",
        file=sys.stderr,
    )
    return pypi_closure(
        allowlist,
        env,
        targets,
        settings.pypi_upstream,
        cache,
        page_ttl=settings.devpi_cache_expiry,
        timeout=settings.upstream_timeout,
    )


def run_closure(args: argparse.Namespace) -> int:
    try:
        allowlist = load_allowlist([args.allowlists])
        report = closure_report(allowlist, args.env, args.ecosystem, args.config)
    except InvalidAllowlist as exc:
        print(
            f"airlock: cannot decide, the allowlists are invalid (run `airlock allowlist check {args.allowlists}`):\n{exc}",
            file=sys.stderr,
        )
        return EXIT_UNDECIDED
    except ClosureError as exc:
        print(f"airlock: could not decide the closure: {exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    if args.write and report.missing:
        return write_missing(allowlist, report, args)
    return EXIT_OK if report.closed else EXIT_NOT_CLOSED


def check_closures(policy, paths: list[str], config: str | None) -> int:
    """`allowlist check --closure`: every environment of every PyPI and conda file; 1 if any is not
    closed, 2 if one cannot be decided."""
    from mirror.policy import build_allowlist

    allowlist = build_allowlist(policy, (), utc_now())
    worst = EXIT_OK
    for ecosystem in (Ecosystem.PYPI, Ecosystem.CONDA):
        policy_file = policy.files.get(ecosystem)
        for env in policy_file.environments if policy_file else ():
            try:
                report = closure_report(allowlist, env, ecosystem.value, config)
            except ClosureError as exc:
                print(f"airlock: could not decide the closure of {ecosystem.value} {env}: {exc}", file=sys.stderr)
                worst = EXIT_UNDECIDED
                continue
            print_report(report)
            if not report.closed and worst == EXIT_OK:
                worst = EXIT_NOT_CLOSED
    return worst


def print_report(report: ClosureReport) -> None:
    verdict = "closed" if report.closed else "NOT closed"
    print(
        f"{report.ecosystem} {report.environment}: {report.entries} entries, {verdict} for {', '.join(report.targets)} "
        f"({report.seconds:.1f} s)"
    )
    if report.missing:
        rows = [
            [m.package, m.requirement, " → ".join(m.required_by) or "-", ", ".join(m.targets), m.fix]
            for m in report.missing
        ]
        print(render_table(["MISSING", "REQUIREMENT", "REQUIRED BY", "TARGETS", "ENTRY THAT WOULD FIX IT"], rows))
    for entry in report.unsatisfiable:
        print(
            f"{entry.entry} cannot be installed from the {report.environment} index on {', '.join(entry.targets)}: {entry.explanation}"
        )
    if report.missing:
        print(
            f"\n{len(report.missing)} package(s) missing: add them with `airlock allowlist closure --env {report.environment} "
            f"--ecosystem {report.ecosystem} --write`, or request exceptions"
        )


_WRITE_ROUNDS = 8
"""An added package may let the resolver choose newer versions that need more: resolve again."""


def write_missing(allowlist, report: ClosureReport, args: argparse.Namespace) -> int:
    """Add entries until the environment is closed (each round resolves again with them), then
    write the file once; nothing is written unless the result loads."""
    path = Path(allowlist.policy.files[Ecosystem(report.ecosystem)].file)
    try:
        before = text = path.read_text()
        added = 0
        for _ in range(_WRITE_ROUNDS):
            entries = [new_entry(missing, report) for missing in report.missing if not missing.denied]
            if not entries:
                break
            text = appended(text, "packages", entries)
            added += len(entries)
            allowlist = allowlist_with(args.allowlists, path, text)
            report = closure_report(allowlist, args.env, args.ecosystem, args.config)
            if report.closed:
                break
    except (EditError, OSError, ClosureError) as exc:
        print(f"airlock: {path}: {exc}; nothing was written", file=sys.stderr)
        return EXIT_UNDECIDED
    except InvalidAllowlist as exc:
        print(f"airlock: the edit of {path} would not load, nothing was written:\n{exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    print(diff(path, before, text), end="")
    write_whole(path, text)
    print(
        f"added {added} entr{'y' if added == 1 else 'ies'} to {path}; check them in review (`airlock allowlist check --closure` in CI)"
    )
    if not report.closed:
        print_report(report)
        return EXIT_NOT_CLOSED
    return EXIT_OK


def new_entry(missing, report: ClosureReport) -> NewEntry:
    """The allowlist entry `--write` adds for a missing package."""
    fields: dict[str, object] = (
        {"name": missing.package} if report.ecosystem == "pypi" else {"spec": missing.requirement}
    )
    versions = requirement_specifier(missing.requirement) if report.ecosystem == "pypi" else ""
    if versions:
        fields["versions"] = versions
    if report.ecosystem == "pypi" and missing.prerelease:
        fields["prereleases"] = True  # what needs it pins a pre-release
    root = missing.required_by[0].split()[0] if missing.required_by else None
    fields.update(
        environments=[report.environment],
        reason=f"dependency of {root}" if root else "dependency",
        owner=missing.owner or "?",
    )
    return NewEntry(fields)


def allowlist_with(folder: str, path: Path, text: str):
    """The allowlist the folder would give with `path` holding `text`; raises InvalidAllowlist."""
    from mirror.policy import build_allowlist

    now = utc_now()
    sources = [
        (name, text if Path(name).resolve() == path.resolve() else body) for name, body in read_policy_sources([folder])
    ]
    return build_allowlist(load_policy_files(sources, now), (), now)
