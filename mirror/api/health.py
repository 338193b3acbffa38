"""`/healthz`, `/readyz`, `/metrics`: what probes and Prometheus read."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from mirror.observability import metrics_response
from mirror.parts import PartsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return metrics_response()


@router.get("/healthz", summary="liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="readiness: every part is up and the allowlists are loaded")
async def readyz(parts: PartsDep) -> Response:
    parts_health = parts.health()
    errors = [str(d) for d in parts.policy.errors]
    ready = all(part["healthy"] or part.get("optional") for part in parts_health.values())
    degraded = sorted(name for name, part in parts_health.items() if not part["healthy"])
    body = {
        "ready": ready,
        "degraded": degraded,
        "parts": parts_health,
        "allowlist": {"generation": parts.policy.current().generation, "rejected_edit": errors},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
