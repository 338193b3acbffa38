"""Refusals of callers with no valid token, counted and summarised instead of audited one by one.

Each refused attempt of an authenticated actor is its own audit record: a person tried something
their role may not do. A caller without a valid token is nobody yet; auditing each of its attempts
let anyone append hash-chained records at will (taking the database's write lock approvals wait
for). So they are counted per source address and window (AIRLOCK_DENIAL_SUMMARY_SECONDS, a
minute), and the background poller writes one `access.denied.unauthenticated` record per source
and window that has ended, with the count, the reasons and a few of the attempts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mirror.audit.log import append
from mirror.store.db import Database

MAX_SOURCES = 10_000
"""Open windows kept at once; beyond, attempts count under the source `other` (memory stays bounded)."""
_SAMPLES = 5
_TEXT = 200
ACTION = "access.denied.unauthenticated"


@dataclass
class _Window:
    first: float
    last: float
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    attempts: list[str] = field(default_factory=list)


class DenialSummary:
    """Thread-safe: routes note from the event loop and worker threads; the poller flushes."""

    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window_seconds = window_seconds
        self._windows: dict[tuple[str, int], _Window] = {}
        self._lock = threading.Lock()
        self.totals: Counter[str] = Counter()
        """Refusals by kind (`missing`, `invalid`) since start: the metric Prometheus reads."""

    def note(self, source: str, reason: str, attempted: str, kind: str = "invalid") -> None:
        now = time.time()
        slot = int(now // self.window_seconds)
        with self._lock:
            self.totals[kind] += 1
            key = (source, slot)
            if key not in self._windows and len(self._windows) >= MAX_SOURCES:
                key = ("other", slot)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now, now)
            window.last = now
            window.count += 1
            if len(window.reasons) < _SAMPLES or reason[:_TEXT] in window.reasons:
                window.reasons[reason[:_TEXT]] += 1
            if len(window.attempts) < _SAMPLES:
                window.attempts.append(attempted[:_TEXT])

    def count(self, kind: str) -> None:
        """Only the metric: an expected refusal (a client's first try without credentials)."""
        with self._lock:
            self.totals[kind] += 1

    def flush(self, database: Database, everything: bool = False) -> int:
        """Write one record per ended window (every window with `everything`, at shutdown);
        returns how many. Windows are dropped only once their records are committed."""
        current = int(time.time() // self.window_seconds)
        with self._lock:
            ended = {key: window for key, window in self._windows.items() if everything or key[1] < current}
        if not ended:
            return 0
        with database.transaction() as session:
            for (source, _), window in sorted(ended.items(), key=lambda item: item[1].first):
                append(session, "anonymous", ACTION, f"source {source}", _details(source, window))
        with self._lock:
            for key in ended:
                self._windows.pop(key, None)
        return len(ended)


def _details(source: str, window: _Window) -> dict[str, Any]:
    def stamp(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")

    return {
        "source": source,
        "count": window.count,
        "first": stamp(window.first),
        "last": stamp(window.last),
        "reasons": dict(window.reasons),
        "attempts": window.attempts,
        "status": 401,
    }
