"""The advisory folder (AIRLOCK_ADVISORIES) as the running service reads it: merged once
(`mirror.policy.advisories`), re-read only when a file in it changed, and listed at most every
couple of seconds (an osv.dev export holds tens of thousands of files; requests come in bursts).
The pre-checks, the allowlist watcher and `explain` all read it through here."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mirror.policy.advisories import AdvisoryIndex, read_advisory_folder

RESCAN_SECONDS = 2.0
_cache: dict[Path, tuple[float, tuple, AdvisoryIndex]] = {}
_lock = threading.Lock()


def fingerprint(folder: Path) -> tuple:
    """Every advisory file's name, mtime and size: equal fingerprints, equal advisories."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            info = path.stat()
        except OSError:  # removed while listed
            continue
        found.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(found)


def load_advisories(folder: Path, fresh: bool = False) -> AdvisoryIndex:
    """The folder's merged advisories; raises ValueError naming a file that is not JSON. `fresh`
    looks at the files now (the watcher has just seen them change)."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(folder)
        if cached is not None and not fresh and now - cached[0] < RESCAN_SECONDS:
            return cached[2]
        stamp = fingerprint(folder)
        if cached is None or cached[1] != stamp:
            cached = (now, stamp, read_advisory_folder(folder))
        _cache[folder] = (now, cached[1], cached[2])
        return cached[2]
