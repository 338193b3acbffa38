"""`airlock allowlist add --from FILE`: start an allowlist from what a project already uses.

Imports requirements.txt, pylock.toml, uv.lock, conda environment.yml and explicit lock files: one
entry per package (pins as `==VERSION`, or `--range compatible`), the transitive closure included
(resolved with uv where the file is not a lock), entries that already allow a version left alone.
Prints the diff; `--dry-run` stops there. Exit 0 added, 1 bad input (nothing written), 2 could not
decide (upstream unreachable).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mirror.allowlist_files import load_allowlist
from mirror.closure.interface import ClosureError
from mirror.closure.lockfiles import CondaWanted, Imported, PypiWanted, compatible_range, read_lockfile
from mirror.closure.writer import EditError, NewEntry, appended, diff, write_whole
from mirror.policy import Ecosystem, InvalidAllowlist, UnknownEnvironment

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNDECIDED = 0, 1, 2


def register(sub: argparse._SubParsersAction, default_folder: str) -> None:
    add = sub.add_parser("add", help="add entries for what a requirements/lock/environment file uses, with its closure")
    add.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="FILE",
        help="requirements.txt, pylock.toml, uv.lock, environment.yml or an explicit conda lock",
    )
    add.add_argument("--env", required=True)
    add.add_argument("--owner", required=True)
    add.add_argument("--reason", required=True)
    add.add_argument(
        "--range",
        choices=["exact", "compatible"],
        default="exact",
        help="exact: ==VERSION (default); compatible: >=VERSION within the same major",
    )
    add.add_argument("--dry-run", action="store_true", help="print the diff only")
    add.add_argument("--allowlists", default=default_folder, metavar="DIR")
    add.add_argument("--config", metavar="FILE")
    add.set_defaults(handler=run_add)


def run_add(args: argparse.Namespace) -> int:
    imported = read_lockfile(args.source)
    if imported.problems:
        return _bad_input(imported.problems)
    try:
        allowlist = load_allowlist([args.allowlists])
        pypi = _pypi_closure(imported, args) if imported.pypi else []
    except InvalidAllowlist as exc:
        print(
            f"airlock: the allowlists are invalid (run `airlock allowlist check {args.allowlists}`):\n{exc}",
            file=sys.stderr,
        )
        return EXIT_UNDECIDED
    except ClosureError as exc:
        if exc.details and all(d.startswith(str(args.source)) for d in exc.details):
            return _bad_input(exc.details)
        print(f"airlock: could not decide: {exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    edits: dict[Path, tuple[str, list[NewEntry]]] = {}
    kept: list[str] = []
    try:
        for ecosystem, wanted in ((Ecosystem.PYPI, pypi), (Ecosystem.CONDA, imported.conda)):
            if wanted:
                entries = _entries(allowlist, ecosystem, wanted, args, kept)
                policy_file = allowlist.policy.files.get(ecosystem)
                if policy_file is None:
                    return _bad_input(
                        [
                            f"{args.source}: it lists {ecosystem.value} packages but {args.allowlists} has no {ecosystem.value}.yaml"
                        ]
                    )
                if entries:
                    edits[Path(policy_file.file)] = (Path(policy_file.file).read_text(), entries)
    except UnknownEnvironment as exc:
        return _bad_input([str(exc)])
    for line in kept:
        print(line)
    texts = {}
    try:
        for path, (before, entries) in edits.items():
            texts[path] = appended(before, "packages", entries)
            print(diff(path, before, texts[path]), end="")
        from mirror.cli.closure import allowlist_with

        for path, text in texts.items():
            allowlist_with(args.allowlists, path, text)
    except (EditError, InvalidAllowlist) as exc:
        print(f"airlock: the entries would not load, nothing was written:\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    added = sum(len(entries) for _, entries in edits.values())
    if args.dry_run or not added:
        print(
            f"{'would add' if args.dry_run else 'added'} {added} entr{'y' if added == 1 else 'ies'}"
            f"{' (dry run: nothing written)' if args.dry_run else ''}"
        )
        return EXIT_OK
    for path, text in texts.items():
        write_whole(path, text)
    print(
        f"added {added} entr{'y' if added == 1 else 'ies'} for {args.env}; check closure: airlock allowlist closure --env {args.env}"
    )
    return EXIT_OK


def _bad_input(problems: list[str]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"airlock: {len(problems)} problem(s): nothing was written", file=sys.stderr)
    return EXIT_BAD_INPUT


def _pypi_closure(imported: Imported, args: argparse.Namespace) -> list[PypiWanted]:
    """Every package the file needs, pinned: a lock file's own list (each checked upstream), or
    what uv resolves the requirements to on the environment's targets (on the unfiltered upstream)."""
    from mirror.closure.pypi import _resolve
    from mirror.closure.resolver_index import ResolverIndex
    from mirror.settings import load_settings

    settings = load_settings(args.config)
    allowlist = load_allowlist([args.allowlists])
    policy_file = allowlist.policy.files.get(Ecosystem.PYPI)
    targets = policy_file.targets_of(args.env).each() if policy_file else []
    cache = settings.data_dir / "closure" / "pypi"
    with ResolverIndex(
        settings.pypi_upstream,
        cache,
        lambda name: False,
        lambda name, version: True,
        page_ttl=settings.devpi_cache_expiry,
        timeout=settings.upstream_timeout,
    ) as index:
        if imported.locked:

            def exists(wanted: PypiWanted) -> str | None:
                page = index._upstream_page(wanted.name)
                versions = {str(p[1]) for p in map(_parsed, page.files) if p} if page else set()
                if page is None:
                    return f"{wanted.origin}: {wanted.name} is not on the upstream index ({settings.pypi_upstream})"
                if _normal(wanted.version) not in versions:
                    return f"{wanted.origin}: {wanted.name} {wanted.version} is not on the upstream index"
                return None

            with ThreadPoolExecutor(max_workers=8) as pool:
                problems = [p for p in pool.map(exists, imported.pypi) if p]
            if index.failures:
                raise ClosureError(index.failures[0], index.failures)
            if problems:
                raise ClosureError(problems[0], problems)
            return imported.pypi
        requirements = [f"{w.name}=={w.version}" if w.version else f"{w.name}{w.specifier}" for w in imported.pypi]
        pinned: dict[str, PypiWanted] = {}
        with tempfile.TemporaryDirectory() as uv_cache:
            for target in targets:
                pins, _, error = _resolve(index, requirements, target, Path(uv_cache), settings.upstream_timeout)
                if index.failures:
                    raise ClosureError(index.failures[0], index.failures)
                if error is not None:
                    raise ClosureError(
                        f"{args.source}: {error}",
                        [f"{args.source}: no version on the upstream index satisfies it: {error}"],
                    )
                for name, version in pins.items():
                    pinned.setdefault(name, PypiWanted(name, version, origin=f"{args.source} (resolved for {target})"))
        return list(pinned.values())


def _normal(version: str | None) -> str | None:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version)) if version else version
    except InvalidVersion:
        return version


def _parsed(filename: str):
    from mirror.pypi.simple import parse_filename

    return parse_filename(filename)


def _entries(
    allowlist, ecosystem: Ecosystem, wanted: list, args: argparse.Namespace, kept: list[str]
) -> list[NewEntry]:
    entries: list[NewEntry] = []
    seen: set[str] = set()
    for item in wanted:
        if isinstance(item, PypiWanted):
            decision = allowlist.decide(Ecosystem.PYPI, args.env, item.name, item.version or "0")
            key = item.name
            fields: dict[str, object] = {
                "name": item.name,
                "versions": compatible_range(item.version) if args.range == "compatible" else f"=={item.version}",
            }
        else:
            assert isinstance(item, CondaWanted)
            decision = allowlist.decide(Ecosystem.CONDA, args.env, item.name, item.version or "0", item.build)
            key = item.spec
            fields = {"spec": item.spec}
            if item.channel and item.channel in (allowlist.policy.files[Ecosystem.CONDA].context or {}):
                fields["channel"] = item.channel
        if decision.allowed:
            kept.append(f"already allowed: {item.name} {item.version} ({decision.rule})")
            continue
        if key in seen:
            continue
        seen.add(key)
        fields.update(environments=[args.env], reason=args.reason, owner=args.owner)
        entries.append(NewEntry(fields))
    return entries
