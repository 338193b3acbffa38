"""Is the vulnerability DB there, readable and young enough for the environment's `max_db_age`?"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


class StaleDatabase(Exception):
    """The gate cannot vouch for an image with this DB: missing, unreadable or too old."""


@dataclass(frozen=True)
class DbState:
    folder: Path
    updated_at: datetime
    age: timedelta


def _parse_time(text: str) -> datetime:
    # Trivy writes RFC 3339 with nanoseconds; Python's parser takes at most microseconds.
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    parsed = datetime.fromisoformat(head + (f".{fraction}" if fraction else ""))
    return parsed.replace(tzinfo=parsed.tzinfo or UTC)


def check_db(folder: Path, max_age: timedelta, now: datetime | None = None) -> DbState:
    """`folder` is what `trivy --cache-dir` gets: it must hold db/trivy.db and db/metadata.json."""
    metadata = folder / "db" / "metadata.json"
    if not (folder / "db" / "trivy.db").is_file() or not metadata.is_file():
        raise StaleDatabase(
            f"no vulnerability DB in {folder} (expected db/trivy.db and db/metadata.json): "
            "build one with `airlock-gate db build --advisories DIR --out DIR` and pass --db DIR"
        )
    try:
        document = json.loads(metadata.read_text())
        updated_at = _parse_time(document["UpdatedAt"])
        version = document.get("Version")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StaleDatabase(
            f"{metadata} is unreadable ({exc.__class__.__name__}): rebuild the DB with `airlock-gate db build`"
        ) from None
    if version != 2:
        raise StaleDatabase(f"{metadata} says schema Version {version!r}; Trivy 0.76 needs 2: rebuild the DB")
    now = now or datetime.now(UTC)
    age = now - updated_at
    if age > max_age:
        raise StaleDatabase(
            f"vulnerability DB in {folder} is {_human(age)} old (updated {updated_at:%Y-%m-%d %H:%M} UTC), "
            f"older than max_db_age {_human(max_age)} in gate.yaml: rebuild it with `airlock-gate db build`"
        )
    return DbState(folder, updated_at, age)


def _human(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
