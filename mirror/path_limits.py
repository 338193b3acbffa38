"""Bounds on a request's path and query, checked before anything parses, caches or logs them.

No package file, project, image or route name is longer than 255 bytes (wheel and sdist names are
file names, and file systems stop there), so a longer path segment is refused with 400 before a
route sees it. Without this bound every distinct long name filled parse caches and log lines in
proportion to what an unauthenticated caller chose to send.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from prometheus_client import Counter
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mirror.observability import REGISTRY
from mirror.refusals import REASON_HEADER

MAX_SEGMENT = 255
MAX_PATH = 4096
MAX_QUERY = 8192

MALFORMED = Counter(
    "airlock_malformed_requests", "Requests refused before routing, by reason", ["reason"], registry=REGISTRY
)


class PathLimits:
    """The outermost middleware: a path segment over 255 bytes, a path over 4 KiB or a query over
    8 KiB gets 400 and a reason, and is neither routed nor logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = over_limit(scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
        if problem is None:
            return await self.app(scope, receive, send)
        MALFORMED.labels(problem[0]).inc()
        await _refusal(scope["path"], problem[1])(scope, receive, send)


def over_limit(raw_path: bytes, query: bytes) -> tuple[str, str] | None:
    """(metric label, reason) when the request is out of bounds; None when it is fine. Segments are
    measured as sent (percent-encoded), which is never shorter than the name they spell."""
    if len(raw_path) > MAX_PATH:
        return "long_path", f"the request path is over {MAX_PATH} bytes; no Airlock route is that long"
    if len(query) > MAX_QUERY:
        return "long_query", f"the query string is over {MAX_QUERY} bytes"
    longest = max((len(segment) for segment in raw_path.split(b"/")), default=0)
    if longest > 3 * MAX_SEGMENT or (longest > MAX_SEGMENT and _decoded_longest(raw_path) > MAX_SEGMENT):
        return "long_segment", (
            f"a path segment is over {MAX_SEGMENT} bytes; no package file, project or image name is that long"
        )
    return None


def _decoded_longest(raw_path: bytes) -> int:
    return max(len(unquote_to_bytes(segment)) for segment in raw_path.split(b"/"))


def _refusal(path: str, reason: str) -> Response:
    if path.startswith("/v2/"):  # docker prints a registry error's message
        body = json.dumps({"errors": [{"code": "NAME_INVALID", "message": f"Airlock: {reason}", "detail": None}]})
        return Response(body, 400, media_type="application/json", headers={REASON_HEADER: reason})
    return Response(
        f"Airlock: {reason}\n", 400, media_type="text/plain; charset=utf-8", headers={REASON_HEADER: reason}
    )
