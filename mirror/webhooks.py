"""Webhook notifications through an outbox.

An event is written to `webhook_deliveries` in the same transaction as the change it reports,
so a decision is never lost and never waits for a receiver. A background sender posts each
delivery and retries failures with exponential backoff.

Deliveries are signed the Standard Webhooks way (standardwebhooks.com): `webhook-id` (the same on
every retry), `webhook-timestamp` and `webhook-signature: v1,BASE64(HMAC-SHA256(key,
"{id}.{timestamp}.{body}"))`, so a receiver can refuse replays (an old timestamp, a seen id).
The key is AIRLOCK_WEBHOOK_SECRET: base64 after `whsec_` (as Standard Webhooks libraries expect),
else its UTF-8 bytes. `X-Airlock-Signature: sha256=HMAC(secret, body)` is still sent for
receivers written against it; it signs no time, so it cannot tell a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mirror.store.db import Database
from mirror.store.models import AuditHead, WebhookDelivery

log = logging.getLogger("airlock.webhooks")
MAX_ATTEMPTS = 12
SIGNATURE_HEADER = "X-Airlock-Signature"
SHOWN_BLOCKING = 50


def enqueue(session: Session, urls: list[str], event: str, payload: dict[str, Any]) -> None:
    """Every event follows its audit record in the same transaction; `audit` carries the chain's head
    then (`seq`, `hash`), so receivers hold anchors for `airlock audit verify --anchor` outside Airlock."""
    if not urls:
        return
    now = datetime.now(UTC)
    seq, digest = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    body = json.dumps(
        {"event": event, "at": now.isoformat(), "data": payload, "audit": {"seq": seq, "hash": digest}},
        sort_keys=True,
        default=str,
    )
    session.connection().execute(
        WebhookDelivery.__table__.insert(),
        [{"url": url, "event": event, "body": body, "attempts": 0, "next_attempt_at": now} for url in urls],
    )


def gate_decision_event(decision: dict[str, Any], audit_id: int) -> dict[str, Any]:
    """What a `gate.decision` webhook carries: the decision without its full list of findings (an
    ML image has thousands, megabytes that chat relays and ticket systems refuse), but with every
    blocking one (up to SHOWN_BLOCKING), a count per check and level, a one-line `text`, and the
    audit record that holds them all."""
    findings = decision.get("findings") or []
    blocking = [finding for finding in findings if finding.get("level") == "fail"]
    summary = Counter(f"{finding.get('check')}.{finding.get('level')}" for finding in findings)
    by_check = Counter(str(finding.get("check")) for finding in blocking)
    headline = f"{str(decision['decision']).upper()}: {decision['image']} for {decision['environment']}"
    if blocking:
        headline += f": {len(blocking)} blocking finding(s) ({', '.join(f'{check} {n}' for check, n in sorted(by_check.items()))})"
    if decision.get("cause"):
        headline += f": {decision['cause']}"
    return {
        **{key: value for key, value in decision.items() if key != "findings"},
        "summary": dict(sorted(summary.items())),
        "blocking": blocking[:SHOWN_BLOCKING],
        "blocking_total": len(blocking),
        "audit_id": audit_id,
        "text": f"{headline}; audit record #{audit_id}",
    }


def sign(secret: str, body: bytes) -> str:
    """The legacy `X-Airlock-Signature` (no timestamp: replayable)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            pass  # not base64 after all: the text is the key
    return secret.encode()


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


def masked_url(url: str) -> str:
    """A receiver's URL fit for a log line: credentials and query (where tokens live) masked."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(0.5 * 2 ** (attempts - 1), 300))


class WebhookSender:
    def __init__(self, db: Database, secret: str | None, interval: float = 0.25, timeout: float = 5.0) -> None:
        self.db = db
        self.secret = secret
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                try:
                    self.deliver_due(client)
                except Exception:  # keep the sender alive; the rows stay in the outbox
                    log.exception("webhook delivery pass failed")
                self._wake.wait(self.interval)
                self._wake.clear()

    def _post(self, client: httpx.Client, delivery: WebhookDelivery) -> str | None:
        """Send one delivery; None when the receiver took it, else what went wrong."""
        body = delivery.body.encode()
        message_id, timestamp = f"airlock-{delivery.id}", int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Airlock-Event": delivery.event,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self.secret:
            headers["webhook-signature"] = standard_signature(self.secret, message_id, timestamp, body)
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            response = client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return exc.__class__.__name__
        return f"HTTP {response.status_code}" if response.status_code >= 300 else None

    def deliver_due(self, client: httpx.Client) -> int:
        now = datetime.now(UTC)
        with self.db.reading() as session:
            due = (
                session.execute(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.delivered_at.is_(None),
                        WebhookDelivery.attempts < MAX_ATTEMPTS,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(50)
                )
                .scalars()
                .all()
            )
        outcomes = [(delivery, self._post(client, delivery)) for delivery in due]
        if not outcomes:
            return 0
        # One short write for the whole pass: on SQLite every transaction queues behind the API's
        # writes (and they behind it), so the deliveries that went through are marked in one statement.
        table = WebhookDelivery.__table__
        delivered = [delivery.id for delivery, error in outcomes if error is None]
        with self.db.transaction() as session:
            now = datetime.now(UTC)
            if delivered:
                session.execute(
                    update(table)
                    .where(table.c.id.in_(delivered))
                    .values(attempts=table.c.attempts + 1, delivered_at=now)
                )
            for delivery, error in outcomes:
                if error is None:
                    continue
                attempts = delivery.attempts + 1
                session.execute(
                    update(table)
                    .where(table.c.id == delivery.id)
                    .values(attempts=attempts, last_error=error, next_attempt_at=now + backoff(attempts))
                )
                level = logging.ERROR if attempts >= MAX_ATTEMPTS else logging.WARNING
                log.log(
                    level,
                    "webhook %s to %s failed (%s), attempt %d of %d",
                    delivery.event,
                    masked_url(delivery.url),
                    error,
                    attempts,
                    MAX_ATTEMPTS,
                )
        return len(due)
