"""`airlock allowlist check | explain | show`: policy as code, reviewed from the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from mirror.allowlist_files import find_policy_files, load_allowlist, read_policy_sources
from mirror.clock import utc_now
from mirror.exposure import stored_release_facts
from mirror.policy import Ecosystem, InvalidAllowlist, UnknownEnvironment, load_policy_files
from mirror.policy.conditions import ReleaseFacts
from mirror.policy.spec import SPEC_FORMS, Question, parse_spec
from mirror.terminal import render_table

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT = 0, 1, 2


def register(commands: argparse._SubParsersAction, default_folder: str) -> None:
    group = commands.add_parser("allowlist", help="validate, explain and show the allowlists")
    sub = group.add_subparsers(dest="allowlist_command", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="validate allowlist files (exit 1 on any error)")
    check.add_argument("paths", nargs="*", metavar="PATH", help=f"files or folders (default: {default_folder})")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument(
        "--closure",
        action="store_true",
        help="also check that every environment's entries install (what a pull request touching allowlists/ runs)",
    )
    check.add_argument("--config", metavar="FILE", help="airlock.toml, for the upstream --closure resolves against")
    check.set_defaults(handler=run_check, default_folder=default_folder)

    explain = sub.add_parser("explain", help="say whether a package is allowed, and by which rule")
    explain.add_argument("ecosystem", choices=[e.value for e in Ecosystem], metavar="ECOSYSTEM")
    explain.add_argument("spec", metavar="SPEC", help="; ".join(f"{e.value}: {f}" for e, f in SPEC_FORMS.items()))
    explain.add_argument("--env", required=True, help="environment, e.g. prod")
    explain.add_argument("--allowlists", default=default_folder, metavar="DIR")
    explain.add_argument(
        "--advisories",
        default=os.environ.get("AIRLOCK_ADVISORIES"),
        metavar="DIR",
        help="folder of OSV advisories (default $AIRLOCK_ADVISORIES): also list the known vulnerabilities of a PyPI version",
    )
    explain.add_argument(
        "--data-dir",
        default=os.environ.get("AIRLOCK_DATA_DIR", ".airlock"),
        metavar="DIR",
        help="the service's data dir (default $AIRLOCK_DATA_DIR or .airlock): upload times and licences it holds, "
        "for the conditions (min_age, licenses)",
    )
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(handler=run_explain)

    from mirror.cli import closure as closure_commands

    closure_commands.register(sub, default_folder)

    show = sub.add_parser("show", help="list the rules in force for an environment")
    show.add_argument("--env", required=True)
    show.add_argument("--ecosystem", choices=[e.value for e in Ecosystem])
    show.add_argument("--allowlists", default=default_folder, metavar="DIR")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)


def run_check(args: argparse.Namespace) -> int:
    paths = args.paths or [args.default_folder]
    now = utc_now()
    try:
        sources = read_policy_sources(paths)
        if not sources:
            raise InvalidAllowlist([])
        policy = load_policy_files(sources, now)
    except InvalidAllowlist as exc:
        problems = exc.diagnostics or []
        if args.json:
            print(json.dumps({"valid": False, "diagnostics": [_diagnostic_json(d) for d in problems]}, indent=2))
        else:
            for diagnostic in problems:
                print(diagnostic)
            errors = sum(d.severity == "error" for d in problems)
            if not problems:
                print(f"{', '.join(map(str, paths))}: no allowlist files (*.yaml) found", file=sys.stderr)
            else:
                print(
                    f"{errors} error{'s' * (errors != 1)}: the allowlists were not applied; fix the lines above",
                    file=sys.stderr,
                )
        return EXIT_BLOCKED
    files, _ = find_policy_files(paths)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "files": [name for name, _ in sources],
                    "diagnostics": [_diagnostic_json(d) for d in policy.warnings],
                },
                indent=2,
            )
        )
        return EXIT_OK
    for warning in policy.warnings:
        print(warning)
    summary = [
        f"{pf.file} ({pf.ecosystem.value}: {len(pf.rules)} entries, environments {', '.join(pf.environments)})"
        for pf in policy.files.values()
    ]
    if policy.gate is not None:
        summary.append(f"{policy.gate.file} (gate thresholds for {', '.join(policy.gate.environments)})")
    print(
        f"ok: {len(files)} file{'s' * (len(files) != 1)} valid"
        + (f", {len(policy.warnings)} warning(s)" if policy.warnings else "")
    )
    for line in summary:
        print(f"  {line}")
    if args.closure:
        from mirror.cli.closure import check_closures

        return check_closures(policy, paths, args.config)
    return EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    ecosystem = Ecosystem(args.ecosystem)
    try:
        question = parse_spec(ecosystem, args.spec)
    except ValueError as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        advisory_index = _advisory_index(args.advisories)
        allowlist = load_allowlist([args.allowlists], advisories=advisory_index)
        facts = (
            stored_release_facts(Path(args.data_dir), canonicalize_name(question.name), question.version)
            if ecosystem is Ecosystem.PYPI
            else ReleaseFacts()
        )
        decision = allowlist.judge(ecosystem, args.env, question.name, question.version, facts, question.build)
    except ValueError as exc:
        print(f"airlock: cannot read the advisories: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InvalidAllowlist as exc:
        print(
            f"airlock: cannot decide, the allowlists are invalid (run `airlock allowlist check {args.allowlists}`):\n{exc}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except UnknownEnvironment as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        advisories = known_vulnerabilities(question, args.advisories)
    except ValueError as exc:
        print(f"airlock: cannot read the advisories: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        answer = {
            "ecosystem": ecosystem.value,
            "environment": args.env,
            "package": question.name,
            "version": question.version,
            "build": question.build,
            "allowed": decision.allowed,
            "reason": decision.reason,
            "rule": decision.rule,
            "condition": decision.condition,
            "available_from": decision.until.isoformat() if decision.until else None,
            "upload_time": facts.upload_time.isoformat() if facts.upload_time else None,
            "licence": facts.licence,
        }
        if advisories is not None:
            answer["advisories"] = advisories
        print(json.dumps(answer, indent=2))
    else:
        print(decision.reason)
        if advisories:
            print(f"known vulnerabilities of {question.name} {question.version} ({args.advisories}):")
            for found in advisories:
                also = f" (also {', '.join(found['aliases'])})" if found["aliases"] else ""
                fixed = f"; fixed in {', '.join(found['fixed'])}" if found["fixed"] else "; no fixed version"
                print(f"  {found['id']}{also} {found['severity']}: {found['title'] or 'no title'}{fixed}")
        elif advisories is not None:
            print(f"no known vulnerability of {question.name} {question.version} in {args.advisories}")
    return EXIT_OK if decision.allowed else EXIT_BLOCKED


def _advisory_index(folder: str | None):
    if folder is None:
        return None
    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: no such folder of OSV advisories")
    from mirror.advisory_feed import load_advisories

    return load_advisories(Path(folder))


def known_vulnerabilities(question: Question, folder: str | None) -> list[dict[str, object]] | None:
    """The merged advisories (the gate's data) affecting a PyPI version; None without a folder."""
    if folder is None or question.ecosystem is not Ecosystem.PYPI:
        return None
    from mirror.policy.advisories import read_advisory_folder

    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: no such folder of OSV advisories")
    index = read_advisory_folder(Path(folder))
    name = canonicalize_name(question.name)
    return [
        {
            "id": v.id,
            "aliases": list(v.aliases),
            "severity": v.severity,
            "title": v.title,
            "fixed": v.affected[name].fixed_versions,
        }
        for v in index.affecting(name, question.version)
    ]


def run_show(args: argparse.Namespace) -> int:
    try:
        allowlist = load_allowlist([args.allowlists])
    except InvalidAllowlist as exc:
        print(
            f"airlock: the allowlists are invalid (run `airlock allowlist check {args.allowlists}`):\n{exc}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    ecosystems = [Ecosystem(args.ecosystem)] if args.ecosystem else list(allowlist.policy.files)
    records = []
    for ecosystem in ecosystems:
        try:
            rules = list(allowlist.rules(ecosystem, args.env))
        except UnknownEnvironment as exc:
            print(f"airlock: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for rule, state in rules:
            records.append(
                {
                    "ecosystem": ecosystem.value,
                    "name": rule.name,
                    "allows": rule.matcher.description,
                    "state": state,
                    "channel": rule.channel,
                    "owner": rule.owner,
                    "reason": rule.reason,
                    "expires": rule.expiry_text if rule.expires_at else None,
                    "rule": str(rule.origin),
                }
            )
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    headers = ["ECOSYSTEM", "NAME", "ALLOWS", "STATE", "OWNER", "EXPIRES", "RULE"]
    rows = [
        [r["ecosystem"], r["name"], r["allows"], r["state"], r["owner"] or "-", r["expires"] or "-", r["rule"]]
        for r in records
    ]
    print(render_table(headers, rows))
    print(f"\n{len(records)} rules in force for {args.env}")
    return EXIT_OK


def _diagnostic_json(diagnostic) -> dict[str, object]:
    return {
        "file": diagnostic.file,
        "line": diagnostic.line,
        "severity": diagnostic.severity,
        "message": diagnostic.message,
    }
