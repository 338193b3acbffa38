"""Request ids, structured access logs, Prometheus metrics, and the optional token on the open
routes (`AIRLOCK_REQUIRE_TOKEN=true`): one ASGI middleware, outside every router."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirror.auth.access import AccessControl, presented_token
from mirror.auth.roles import Permission, may_use_open_route
from mirror.refusals import refusal

log = logging.getLogger("airlock.access")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
OPEN_PREFIXES = ("/pypi/", "/conda/", "/v2/")

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "airlock_http_requests",
    "HTTP requests by route, method and status class",
    ["route", "method", "status_class"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "airlock_http_request_duration_seconds",
    "HTTP request latency by route",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter(
    "airlock_policy_decisions", "Package decisions served", ["ecosystem", "environment", "outcome"], registry=REGISTRY
)
UPSTREAM_ERRORS = Counter(
    "airlock_upstream_errors",
    "Upstream or cache failures that made Airlock answer 503",
    ["upstream"],
    registry=REGISTRY,
)
GATE_OUTCOMES = Counter(
    "airlock_gate_decisions", "Gate decisions reported to the server", ["decision"], registry=REGISTRY
)


class LogContext(logging.Filter):
    """Puts the current request id on every log record (the JSON formatter prints it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class StateCollector:
    """Values read at scrape time: children's health, exception requests by state."""

    def __init__(
        self,
        health: Callable[[], dict[str, Any]],
        counts: Callable[[], dict[str, int]],
        denials: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.health, self.counts, self.denials = health, counts, denials

    def collect(self):
        up = GaugeMetricFamily("airlock_child_up", "1 when a supervised child answers its probe", labels=["child"])
        restarts = GaugeMetricFamily("airlock_child_restarts", "Restarts of a supervised child", labels=["child"])
        for name, part in self.health().items():
            up.add_metric([name], 1.0 if part.get("healthy") else 0.0)
            restarts.add_metric([name], float(part.get("restarts", 0)))
        requests = GaugeMetricFamily("airlock_exception_requests", "Exception requests by state", labels=["state"])
        for state, count in self.counts().items():
            requests.add_metric([state], float(count))
        refused = CounterMetricFamily(
            "airlock_unauthenticated_denials",
            "Requests refused for a missing or invalid token (summarised in the audit log, not one record each)",
            labels=["reason"],
        )
        for reason, count in sorted(self.denials().items()):
            refused.add_metric([reason], float(count))
        yield from (up, restarts, requests, refused)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type="text/plain; version=0.0.4; charset=utf-8")


class Observability:
    """The outermost middleware: a request id for every request, its access line and metrics, and —
    with AIRLOCK_REQUIRE_TOKEN=true — the token package routes and /metrics take (through the same
    `AccessControl` as the API)."""

    def __init__(self, app: ASGIApp, require_token: bool, access: AccessControl) -> None:
        self.app = app
        self.require_token = require_token
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            refusal = await self._token_gate(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            # Unmatched paths share one label, so that scanners cannot blow up the metric's cardinality.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            REQUESTS.labels(route, scope["method"], f"{status // 100}xx").inc()
            LATENCY.labels(route).observe(elapsed)
            log.info(
                "%s %s %d",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id.reset(token)

    async def _token_gate(self, scope: Scope, headers: dict[bytes, bytes]) -> Response | None:
        path = scope["path"]
        permission = (
            Permission.METRICS
            if path == "/metrics"
            else Permission.IMAGES
            if path.startswith("/v2/")
            else Permission.PACKAGES
            if path.startswith(OPEN_PREFIXES)
            else None
        )
        if not self.require_token or permission is None:
            return None
        presented = presented_token(headers.get(b"authorization", b"").decode("latin-1"))
        if presented is None:
            # pip and conda ask without credentials first: counted (the metric), never audited.
            self.access.denials.count("missing")
            return _auth_required(
                "a token is required (AIRLOCK_REQUIRE_TOKEN=true): pip/conda: put it as the password in the "
                "index URL (http://user:TOKEN@host/...); docker: docker login with the token"
            )
        principal, why = await run_in_threadpool(self.access.lookup, presented)
        if principal is None:
            source = (scope.get("client") or ("?",))[0]
            self.access.deny(None, f"{scope['method']} {path}", path, f"invalid token: {why}", None, 401, source)
            return _auth_required(f"invalid token: {why}")
        if not may_use_open_route(principal, permission):
            reason = f"role {principal.role} may not {permission.value}"
            await run_in_threadpool(self.access.deny, principal, f"GET {path}", path, reason, None, 403)
            return JSONResponse({"detail": reason}, status_code=403, headers={"X-Airlock-Reason": reason})
        return None


def _auth_required(reason: str) -> Response:
    return refusal(401, reason, route="token", headers={"WWW-Authenticate": 'Basic realm="airlock"'})
