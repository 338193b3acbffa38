"""`airlock up` and `airlock status`."""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from mirror.allowlist_files import load_allowlist
from mirror.cli.tables import render_table
from mirror.policy import Ecosystem, InvalidAllowlist
from mirror.settings import ConfigurationError, Settings, load_settings


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
    from mirror.service import run_service  # the service's imports are heavy; other commands skip them

    return run_service(settings)


def run_status(args: argparse.Namespace) -> int:
    from mirror.service import client_settings

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        response = httpx.get(f"http://{settings.listen}/readyz", timeout=5.0)
        readiness = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        readiness = {"ready": False, "parts": {}, "error": f"Airlock does not answer on {settings.listen} ({exc.__class__.__name__}); start it with `airlock up`"}
    try:
        environments = load_allowlist([settings.allowlists]).environments(Ecosystem.PYPI)
    except InvalidAllowlist:
        environments = []
    clients = client_settings(settings, environments)
    if args.json:
        print(json.dumps({"url": settings.base_url, **readiness, "clients": clients}, indent=2))
        return 0 if readiness.get("ready") else 1
    print(f"Airlock at {settings.base_url}: {'ready' if readiness.get('ready') else 'NOT READY'}")
    if "error" in readiness:
        print(f"  {readiness['error']}")
    rows = [[name, "yes" if part.get("healthy") else "NO", ", ".join(f"{k}={v}" for k, v in part.items() if k != "healthy")]
            for name, part in readiness.get("parts", {}).items()]
    if rows:
        print(render_table(["PART", "HEALTHY", "DETAIL"], rows))
    for row in clients:
        print(f"\n[{row['environment']}]\n  pip: {row['pip']}\n  uv:  {row['uv']}")
    return 0 if readiness.get("ready") else 1
