"""`airlock token …` and `airlock audit …`: run on the server's machine, against its database."""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import sys
from collections.abc import Callable

from mirror.audit.log import export_lines, verify_session
from mirror.auth.tokens import TokenError, create_token, list_tokens, parse_duration, revoke_token
from mirror.settings import ConfigurationError, load_settings
from mirror.store.db import Database, DatabaseUnavailable
from mirror.terminal import render_table


def register(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="API tokens: create, list, revoke")
    token_actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="issue a token; prints it alone on stdout, once")
    create.add_argument("--user", required=True)
    create.add_argument("--role", required=True)
    create.add_argument("--project", action="append", default=[], dest="projects", metavar="P")
    create.add_argument(
        "--expires-in",
        default="90d",
        metavar="DURATION",
        help="e.g. 90d, 12h (default 90d; at most AIRLOCK_TOKEN_MAX_DAYS, 365d)",
    )
    create.set_defaults(handler=run_token_create)
    listing = token_actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_token_list)
    revoke = token_actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.set_defaults(handler=run_token_revoke)

    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_actions.add_parser("verify", help="check the hash chain (exit 1 if tampered)")
    verify.add_argument(
        "--anchor",
        action="append",
        type=_anchor,
        default=[],
        metavar="SEQ:HASH",
        help="a record's hash kept outside Airlock (printed by an earlier verify, or a webhook's `audit`): "
        "that record must still be in the log, unchanged (repeatable)",
    )
    verify.set_defaults(handler=run_audit_verify)
    export = audit_actions.add_parser("export", help="print every record")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(handler=run_audit_export)
    for parser in (create, listing, revoke, *audit_actions.choices.values()):
        parser.add_argument("--config", metavar="FILE")


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def with_database(command: Callable[[argparse.Namespace, Database], int]) -> Callable[[argparse.Namespace], int]:
    """Open (and migrate) the configured database for a command; exit 2 on bad configuration."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        database = _database(args)
        if database is None:
            return 2
        try:
            return command(args, database)
        finally:
            database.dispose()

    return run


def _database(args: argparse.Namespace) -> Database | None:
    try:
        settings = load_settings(args.config)
    except ConfigurationError as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return None
    database = Database(settings.resolved_database_url)
    try:
        database.migrate()
    except DatabaseUnavailable as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return None
    return database


@with_database
def run_token_create(args: argparse.Namespace, database: Database) -> int:
    try:
        with database.transaction() as session:
            token, row = create_token(
                session,
                args.user,
                args.role,
                args.projects,
                parse_duration(args.expires_in),
                actor=_cli_actor(),
                max_days=load_settings(args.config).token_max_days,
            )
    except TokenError as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"token {row.id} for {row.user} ({row.role}) expires {row.expires_at:%Y-%m-%d %H:%M} UTC; it is shown only now",
        file=sys.stderr,
    )
    return 0


@with_database
def run_token_list(args: argparse.Namespace, database: Database) -> int:
    with database.reading() as session:
        rows = list_tokens(session)
    records = [
        {
            "id": r.id,
            "user": r.user,
            "role": r.role,
            "projects": r.projects,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(
        render_table(
            ["ID", "USER", "ROLE", "PROJECTS", "EXPIRES", "REVOKED"],
            [
                [
                    r["id"],
                    r["user"],
                    r["role"],
                    ",".join(r["projects"]) or "-",
                    (r["expires_at"] or "never")[:16],
                    (r["revoked_at"] or "-")[:16],
                ]
                for r in records
            ],
        )
    )
    return 0


@with_database
def run_token_revoke(args: argparse.Namespace, database: Database) -> int:
    with database.transaction() as session:
        row = revoke_token(session, args.token_id, actor=_cli_actor())
    if row is None:
        print(f"airlock: no token {args.token_id} (see `airlock token list`)", file=sys.stderr)
        return 1
    print(f"token {row.id} ({row.user}, {row.role}) revoked")
    return 0


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (seq.isdigit() and int(seq) >= 1 and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not SEQ:HASH (a record number, a colon and the 64 hex digits "
            "`airlock audit verify` prints as the anchor)"
        )
    return int(seq), digest


@with_database
def run_audit_verify(args: argparse.Namespace, database: Database) -> int:
    with database.reading() as session:
        result = verify_session(session, label="verifying the audit log", anchors=dict(args.anchor))
    if result.intact:
        matched = f", {len(args.anchor)} anchor(s) matched" if args.anchor else ""
        print(f"audit log intact: {result.records} records, hash chain verified{matched}")
        if result.head and result.head[0]:
            anchor = f"{result.head[0]}:{result.head[1]}"
            print(
                f"anchor: {anchor} (keep it outside Airlock; `airlock audit verify --anchor {anchor}` later proves "
                "that nothing up to this record was rewritten or removed)"
            )
        return 0
    print(f"audit log TAMPERED at record {result.first_bad}: {result.problem}")
    return 1


@with_database
def run_audit_export(args: argparse.Namespace, database: Database) -> int:
    with database.reading() as session:
        for line in export_lines(session):
            print(line)
    return 0
