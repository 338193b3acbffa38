"""The one clock: aware UTC datetimes (decisions, expiries and audit records compare them)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
