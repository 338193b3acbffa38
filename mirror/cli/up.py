"""`airlock up` and `airlock status`."""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx

from mirror.allowlist_files import load_allowlist
from mirror.policy import InvalidAllowlist
from mirror.settings import ConfigurationError, Settings, load_settings
from mirror.terminal import render_table


def register(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="run the whole service on this machine (until Ctrl-C)")
    up.add_argument("--config", metavar="FILE", help="configuration file (default: ./airlock.toml if present)")
    up.set_defaults(handler=run_up)

    status = commands.add_parser("status", help="client settings per environment, and the service's health")
    status.add_argument("--config", metavar="FILE")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_status)


def _settings(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(args.config)
    except ConfigurationError as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return None


def run_up(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    from mirror.server import run_service  # the service's imports are heavy; other commands skip them

    return run_service(settings)


def run_status(args: argparse.Namespace) -> int:
    from mirror.banner import client_settings

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        token = os.environ.get("AIRLOCK_TOKEN")  # with AIRLOCK_REQUIRE_TOKEN=true, details need an operator's
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"http://{settings.listen}/readyz", timeout=5.0, headers=headers)
        readiness = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        readiness = {
            "ready": False,
            "parts": {},
            "error": f"Airlock does not answer on {settings.listen} ({exc.__class__.__name__}); start it with `airlock up`",
        }
    try:
        allowlist = load_allowlist([settings.allowlists])
    except InvalidAllowlist:
        allowlist = None
    clients = client_settings(settings, allowlist)
    if args.json:
        print(json.dumps({"url": settings.base_url, **readiness, "clients": clients}, indent=2))
        return 0 if readiness.get("ready") else 1
    print(f"Airlock at {settings.base_url}: {'ready' if readiness.get('ready') else 'NOT READY'}")
    if "error" in readiness:
        print(f"  {readiness['error']}")
    elif "parts" not in readiness:
        print("  details need AIRLOCK_TOKEN set to a monitoring-process or platform-support token")
    rows = [
        [name, "yes" if part.get("healthy") else "NO", ", ".join(f"{k}={v}" for k, v in part.items() if k != "healthy")]
        for name, part in readiness.get("parts", {}).items()
    ]
    if rows:
        print(render_table(["PART", "HEALTHY", "DETAIL"], rows))
    for row in clients:
        print(
            f"\n[{row['environment']}]\n  pip: {row['pip']}\n  uv:  {row['uv']}\n  conda: {row['conda']}\n  docker: {row['docker']}"
        )
    return 0 if readiness.get("ready") else 1


def register_sync(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync",
        help="conda: build the curated channels from upstream (verify, index, publish); containers: pre-pull the allowlisted base images",
    )
    sync.add_argument(
        "what",
        choices=["conda", "containers"],
        help="conda: build the curated channels; containers: pre-pull the allowlisted base images through the running service",
    )
    sync.add_argument("--env", action="append", dest="envs", metavar="ENV", help="only this environment (repeatable)")
    sync.add_argument("--config", metavar="FILE")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(handler=run_sync)


def run_sync(args: argparse.Namespace) -> int:
    from mirror.allowlist_files import load_allowlist
    from mirror.conda.channel import CondaSync
    from mirror.containers.sync import sync_images
    from mirror.exception_requests.store import grants
    from mirror.server import open_database
    from mirror.store.db import DatabaseUnavailable

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        database = open_database(settings)
    except DatabaseUnavailable as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return 1
    try:
        allowlist = load_allowlist([settings.allowlists], grants(database))
    except InvalidAllowlist as exc:
        print(f"airlock: the allowlists are invalid (airlock allowlist check):\n{exc}", file=sys.stderr)
        return 1
    with httpx.Client(timeout=settings.upstream_timeout) as client:
        if args.what == "containers":
            report = sync_images(allowlist, f"http://{settings.listen}", client, args.envs)
            sections = [("cached", report.pulled)]
            failure_note = ""
        else:
            report = CondaSync(settings.data_dir, client).run(allowlist, args.envs)
            sections = [("published", report.published), ("unchanged", report.unchanged), ("warning:", report.warnings)]
            failure_note = "nothing new was published; the previous channels are still served"
    database.dispose()
    if args.json:
        print(json.dumps(report.__dict__, indent=2, default=sorted))  # sorted: the report's sets of names
    else:
        for label, lines in sections:
            for line in lines:
                print(f"{label} {line}")
        for line in report.problems:
            print(f"error: {line}", file=sys.stderr)
        if report.problems and failure_note:
            print(failure_note, file=sys.stderr)
    return 1 if report.problems else 0
