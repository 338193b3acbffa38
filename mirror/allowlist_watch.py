"""The allowlist in force for the running service: swapped whole when a file changes, an entry or
exception ends, the approved exceptions change, or the advisory folder changes (conditions read
it). Readers take a reference; nothing here writes (`on_advisories` is told of a new feed)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mirror.advisory_feed import RESCAN_SECONDS, load_advisories
from mirror.advisory_feed import fingerprint as advisory_fingerprint
from mirror.allowlist_files import find_policy_files, load_allowlist
from mirror.clock import utc_now
from mirror.policy import Allowlist, Diagnostic, ExceptionGrant, InvalidAllowlist
from mirror.policy.advisories import AdvisoryIndex

log = logging.getLogger("airlock.allowlists")


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
        advisories: Path | None = None,
        on_advisories: Callable[[Allowlist, Allowlist], None] = lambda before, after: None,
    ) -> None:
        self.folder = Path(folder)
        self._grants = grants
        self.interval = interval
        self.advisories = advisories
        self._on_advisories = on_advisories
        self._lock = threading.Lock()
        self._fingerprint = self._stat()
        self._feed_checked = time.monotonic()
        self._feed = advisory_fingerprint(advisories) if advisories else ()
        self._state = WatchState(load_allowlist([self.folder], self._grants(), advisories=self._advisories()))

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
            feed_changed = self._feed_changed()
            if (
                not force
                and not feed_changed
                and fingerprint == self._fingerprint
                and not self._state.allowlist.is_stale(utc_now())
            ):
                return False
            self._fingerprint = fingerprint
            previous = self._state.allowlist
            try:
                allowlist = load_allowlist([self.folder], self._grants(), advisories=self._advisories())
            except InvalidAllowlist as exc:
                if tuple(exc.diagnostics) != self._state.errors:
                    log.error("allowlist edit rejected, the previous allowlist stays in force:\n%s", exc)
                self._state = WatchState(self._state.allowlist, tuple(exc.diagnostics))
                return False
            except ValueError as exc:  # an advisory file that is not JSON: keep what was vetted
                log.error("advisory folder unreadable, the previous allowlist and advisories stay in force: %s", exc)
                return False
            self._state = WatchState(allowlist)
            log.info("allowlist reloaded (generation %d)", allowlist.generation)
        if feed_changed:
            self._on_advisories(previous, allowlist)
        return True

    def _advisories(self) -> AdvisoryIndex | None:
        return load_advisories(self.advisories, fresh=True) if self.advisories else None

    def _feed_changed(self) -> bool:
        """Whether the advisory folder changed, looked at every couple of seconds at most."""
        if self.advisories is None or time.monotonic() - self._feed_checked < RESCAN_SECONDS:
            return False
        self._feed_checked = time.monotonic()
        stamp = advisory_fingerprint(self.advisories)
        if stamp == self._feed:
            return False
        self._feed = stamp
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
