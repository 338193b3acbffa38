"""`/healthz`, `/readyz`, `/metrics`: what probes and Prometheus read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from mirror.auth.access import presented_token
from mirror.auth.roles import Permission, may_use_open_route
from mirror.observability import metrics_response
from mirror.parts import PartsDep, ServiceParts

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return metrics_response()


@router.get("/healthz", summary="liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="readiness: every part is up and the allowlists are loaded")
async def readyz(request: Request, parts: PartsDep) -> Response:
    """With AIRLOCK_REQUIRE_TOKEN=true, a caller without a `monitoring-process` or `platform-support`
    token gets `ready` alone: child URLs, PIDs and file paths are for operators."""
    parts_health = parts.health()
    ready = all(part["healthy"] or part.get("optional") for part in parts_health.values())
    status = 200 if ready else 503
    if parts.settings.require_token and not await _operator(request, parts):
        return JSONResponse({"ready": ready}, status_code=status)
    errors = [str(d) for d in parts.policy.errors]
    degraded = sorted(name for name, part in parts_health.items() if not part["healthy"])
    body = {
        "ready": ready,
        "degraded": degraded,
        "parts": parts_health,
        "allowlist": {"generation": parts.policy.current().generation, "rejected_edit": errors},
    }
    return JSONResponse(body, status_code=status)


async def _operator(request: Request, parts: ServiceParts) -> bool:
    presented = presented_token(request.headers.get("authorization", ""))
    if presented is None:
        return False
    principal = parts.access.cached(presented)
    if principal is None:
        principal, _ = await run_in_threadpool(parts.access.lookup, presented)
    return principal is not None and may_use_open_route(principal, Permission.METRICS)
