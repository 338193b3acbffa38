"""How Airlock says no: one response shape per protocol, the reason always in body and header."""

from __future__ import annotations

import json
import logging

from starlette.responses import Response

log = logging.getLogger("airlock.refusals")
REASON_HEADER = "X-Airlock-Reason"


def header_safe(reason: str) -> str:
    """HTTP header values are Latin-1 on one line; reasons are ASCII by design, but names are not."""
    return " ".join(reason.encode("ascii", "replace").decode().split())[:2000]


def refusal(
    status: int, reason: str, *, route: str = "", subject: str = "", headers: dict[str, str] | None = None
) -> Response:
    """A plain-text refusal for pip/uv/conda routes (401 token needed, 404 blocked, 503 cannot decide)."""
    log.info("refused %s %s: %s", route, subject, reason, extra={"status": status, "route": route, "subject": subject})
    return Response(
        f"Airlock: {reason}\n",
        status_code=status,
        media_type="text/plain; charset=utf-8",
        headers={REASON_HEADER: header_safe(reason), **(headers or {})},
    )


def registry_refusal(status: int, code: str, reason: str, *, route: str = "", subject: str = "") -> Response:
    """A refusal in the registry API's error JSON, whose `message` docker prints."""
    log.info("refused %s %s: %s", route, subject, reason, extra={"status": status, "route": route, "subject": subject})
    body = json.dumps({"errors": [{"code": code, "message": reason, "detail": None}]})
    return Response(
        body, status_code=status, media_type="application/json", headers={REASON_HEADER: header_safe(reason)}
    )
