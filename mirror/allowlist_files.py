"""Reading allowlist files from disk and keeping the effective allowlist current.

`mirror.policy` is pure; this module is the one place that reads `allowlists/` for it. The
watcher rebuilds the allowlist when a file changes (or an entry expires) and swaps it in whole;
an invalid edit is reported and leaves the previous allowlist enforced.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from mirror.policy import Allowlist, Diagnostic, ExceptionGrant, InvalidAllowlist, build_allowlist, load_policy_files

log = logging.getLogger("airlock.allowlists")
POLICY_SUFFIXES = (".yaml", ".yml")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


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


def load_allowlist(paths: Sequence[str | os.PathLike[str]], grants: Iterable[ExceptionGrant] = (), now: datetime | None = None) -> Allowlist:
    now = now or utc_now()
    sources = read_policy_sources(paths)
    with collector_paused():
        return build_allowlist(load_policy_files(sources, now), grants, now)


@dataclass(frozen=True)
class WatchState:
    allowlist: Allowlist
    errors: tuple[Diagnostic, ...] = ()
    """Problems of the newest edit that could not be applied (the previous allowlist stays)."""


class AllowlistWatcher:
    """Holds the current `Allowlist`; `current()` is a reference read, rebuilding when due.

    Files are stat-ed at most every `interval` seconds, so an edit is enforced within that time
    plus one rebuild, with no thread and no restart. `grants` returns the approved exceptions.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        grants: Callable[[], Iterable[ExceptionGrant]] = lambda: (),
        interval: float = 0.5,
    ) -> None:
        self.folder = Path(folder)
        self._grants = grants
        self.interval = interval
        self._lock = threading.Lock()
        self._checked = 0.0
        self._fingerprint = self._stat()
        self._state = WatchState(load_allowlist([self.folder], self._grants()))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return self._state.errors

    def current(self) -> Allowlist:
        state = self._state
        now_monotonic = time.monotonic()
        if now_monotonic - self._checked >= self.interval or state.allowlist.is_stale(utc_now()):
            self._refresh(now_monotonic)
        return self._state.allowlist

    def invalidate(self) -> None:
        """Rebuild on the next `current()`: exceptions changed."""
        self._fingerprint = ()
        self._checked = 0.0

    def _stat(self) -> tuple[tuple[str, int, int], ...]:
        files, _ = find_policy_files([self.folder])
        stats = []
        for path in files:
            try:
                info = path.stat()
            except OSError:
                continue
            stats.append((str(path), info.st_mtime_ns, info.st_size))
        return tuple(stats)

    def _refresh(self, now_monotonic: float) -> None:
        with self._lock:
            self._checked = now_monotonic
            fingerprint = self._stat()
            if fingerprint == self._fingerprint and not self._state.allowlist.is_stale(utc_now()):
                return
            try:
                allowlist = load_allowlist([self.folder], self._grants())
            except InvalidAllowlist as exc:
                if exc.diagnostics != list(self._state.errors):
                    log.error("allowlist edit rejected, previous allowlist stays in force:\n%s", exc)
                self._state = WatchState(self._state.allowlist, tuple(exc.diagnostics))
                self._fingerprint = fingerprint
                return
            self._fingerprint = fingerprint
            self._state = WatchState(allowlist)
            log.info("allowlist reloaded (generation %d)", allowlist.generation)
