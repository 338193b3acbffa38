"""A gate decision reported to the server: audited, counted, and announced by webhook."""

from __future__ import annotations

from typing import Any

from mirror.audit.log import append
from mirror.observability import GATE_OUTCOMES
from mirror.store.db import Database
from mirror.webhooks import enqueue, gate_decision_event


def record_gate_decision(database: Database, actor: str, decision: dict[str, Any], webhook_urls: list[str]) -> int:
    """Append the decision (every finding) to the audit log with its webhook; returns the record's sequence."""
    GATE_OUTCOMES.labels(decision["decision"]).inc()
    with database.transaction() as session:
        record = append(session, actor, "gate.decision", decision["image"], decision)
        enqueue(session, webhook_urls, "gate.decision", gate_decision_event(decision, record.seq))
    return record.seq
