"""`policy.changed`: when the advisory folder changes, what that newly withholds — one audit record
and one webhook per change, naming the packages, versions, environments, advisories and the
owners of the entries that allowed them (so they can tighten ranges)."""

from __future__ import annotations

import logging
from pathlib import Path

from mirror.audit.log import append
from mirror.clock import utc_now
from mirror.exposure import newly_withheld
from mirror.policy import Allowlist
from mirror.store.db import Database
from mirror.webhooks import enqueue

log = logging.getLogger("airlock.policy")


def record_advisory_change(
    database: Database, webhook_urls: list[str], data_dir: Path, before: Allowlist, after: Allowlist
) -> dict:
    changes = newly_withheld(before, after, data_dir, utc_now())
    details = {
        "cause": "the advisory folder changed",
        "vulnerabilities": {
            "before": len(before.advisories.vulnerabilities) if before.advisories else 0,
            "after": len(after.advisories.vulnerabilities) if after.advisories else 0,
        },
        "newly_withheld": changes,
        "generation": after.generation,
    }
    with database.transaction() as session:
        append(session, "airlock", "policy.changed", "advisories", details)
        enqueue(session, webhook_urls, "policy.changed", details)
    for change in changes:
        log.warning(
            "%s %s is now withheld in %s (%s: %s); owner %s",
            change["package"],
            ", ".join(change["versions"]),
            change["environment"],
            ", ".join(change["conditions"]),
            ", ".join(change["advisories"]),
            change["owner"] or "?",
            extra={"package": change["package"], "environment": change["environment"]},
        )
    return details
