"""Reading allowlist files from disk: `mirror.policy` is pure, and this module is the one place
that reads `allowlists/` for it (the service's watcher, the CLI and the gate alike)."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from mirror.clock import utc_now
from mirror.policy import Allowlist, Diagnostic, ExceptionGrant, InvalidAllowlist, build_allowlist, load_policy_files
from mirror.policy.advisories import AdvisoryIndex

POLICY_SUFFIXES = (".yaml", ".yml")


def display_path(path: Path) -> str:
    """`allowlists/pypi.yaml` when under the working directory, else the absolute path."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def find_policy_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand folders to their `*.yaml` files; a missing path is a diagnostic, not a crash."""
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Diagnostic(str(raw), 0, "no such file or folder"))
    return files, problems


def read_policy_sources(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, str]]:
    """`(display name, text)` for every policy file; raises `InvalidAllowlist` if one is unreadable."""
    files, problems = find_policy_files(paths)
    sources = []
    for path in files:
        try:
            sources.append((display_path(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Diagnostic(display_path(path), 0, f"cannot read the file: {exc}"))
    if problems:
        raise InvalidAllowlist(problems)
    return sources


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic GC while an allowlist is built.

    A 100,000-rule build allocates about a million objects that all survive; with the collector
    running, CPython rescans them again and again, doubling the load time. Nothing built here
    forms cycles that need collecting during the build.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_allowlist(
    paths: Sequence[str | os.PathLike[str]],
    grants: Iterable[ExceptionGrant] = (),
    now: datetime | None = None,
    advisories: AdvisoryIndex | None = None,
) -> Allowlist:
    now = now or utc_now()
    sources = read_policy_sources(paths)
    with collector_paused():
        return build_allowlist(load_policy_files(sources, now), grants, now, advisories)
