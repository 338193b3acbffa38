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
    """Holds the current `Allowlist`; readers take the reference, `poll()` replaces it.

    `poll()` stats the files and rebuilds when one changed (or an entry or exception expired);
    the service calls it every `interval` seconds from a background thread, so an edit is
    enforced within that time plus one rebuild, with no restart. `grants` returns the approved
    exceptions. An invalid edit is logged, kept in `errors`, and changes nothing.
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
        self._fingerprint = self._stat()
        self._state = WatchState(load_allowlist([self.folder], self._grants()))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return self._state.errors

    def current(self) -> Allowlist:
        allowlist = self._state.allowlist
        if allowlist.valid_until is not None and allowlist.is_stale(utc_now()):
            self.poll(force=True)  # an entry or exception just expired: never answer from the old one
            allowlist = self._state.allowlist
        return allowlist

    def invalidate(self) -> None:
        """Rebuild now: the approved exceptions changed."""
        self.poll(force=True)

    def poll(self, force: bool = False) -> bool:
        """Rebuild if a file changed or `force`; True when a new allowlist was swapped in."""
        with self._lock:
            fingerprint = self._stat()
            if not force and fingerprint == self._fingerprint and not self._state.allowlist.is_stale(utc_now()):
                return False
            self._fingerprint = fingerprint
            try:
                allowlist = load_allowlist([self.folder], self._grants())
            except InvalidAllowlist as exc:
                if tuple(exc.diagnostics) != self._state.errors:
                    log.error("allowlist edit rejected, the previous allowlist stays in force:\n%s", exc)
                self._state = WatchState(self._state.allowlist, tuple(exc.diagnostics))
                return False
            self._state = WatchState(allowlist)
            log.info("allowlist reloaded (generation %d)", allowlist.generation)
            return True

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
