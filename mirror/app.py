"""The FastAPI application: one router per area, shared state on `app.state`.

`create_app` is given running parts (the allowlist watcher, the devpi child, the database); it
starts nothing itself, so tests and `airlock up` assemble it the same way.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.encoders import jsonable_encoder
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mirror.allowlist_files import AllowlistWatcher
from mirror.api.exceptions import router as exceptions_router
from mirror.api.governance import router as governance_router
from mirror.auth.tokens import TokenCache
from mirror.conda.routes import router as conda_router
from mirror.containers.routes import Reachability
from mirror.containers.routes import router as containers_router
from mirror.exceptions.service import ApiError, ExceptionService
from mirror.observability import REGISTRY, Observability, StateCollector, metrics_response
from mirror.pypi.metadata import CoreMetadata
from mirror.pypi.pages import ProjectPages, UpstreamFacts
from mirror.pypi.routes import router as pypi_router
from mirror.refusals import refusal
from mirror.settings import Settings


@dataclass
class Parts:
    """What `airlock up` (or a test) hands the app."""

    settings: Settings
    policy: AllowlistWatcher
    exceptions: ExceptionService
    devpi_url: str
    health: Callable[[], dict[str, Any]]
    on_stop: Callable[[], None] = lambda: None
    """Runs at shutdown inside uvicorn's lifespan: uvicorn re-raises the SIGTERM it caught once
    it has shut down, so code after `server.run()` may never run."""
    devpi_files: Path | None = None
    registry_caches: dict[str, str] = field(default_factory=dict)
    """Upstream name -> URL of its pull-through registry cache on loopback."""
    extra_state: dict[str, Any] = field(default_factory=dict)


class BodyLimit:
    """Refuse API bodies over the limit (413) before they are read into memory. `per_path`: routes
    with their own limit (a gate decision carries every finding of an image: megabytes)."""

    def __init__(self, app: ASGIApp, limit: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope["path"].rstrip("/"), self.limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise ApiError(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, counted, send)


def create_app(parts: Parts) -> FastAPI:
    settings = parts.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        timeout = httpx.Timeout(settings.upstream_timeout, connect=5.0)
        try:
            async with httpx.AsyncClient(base_url=parts.devpi_url, limits=limits, timeout=timeout) as client, \
                    httpx.AsyncClient(limits=limits, timeout=timeout, follow_redirects=False) as registry_client, \
                    httpx.AsyncClient(limits=limits, timeout=timeout) as upstream_client:
                app.state.devpi_client = client
                app.state.registry_client = registry_client
                pypi_data = settings.data_dir / "pypi"
                metadata = CoreMetadata(pypi_data / "metadata", parts.devpi_files,
                                        extract=settings.pypi_metadata == "extract", timeout=settings.upstream_timeout)
                facts = UpstreamFacts(upstream_client, settings.pypi_upstream, pypi_data / "upstream", settings.devpi_cache_expiry)
                app.state.pypi_metadata = metadata
                app.state.pypi_pages = ProjectPages(client, settings.pypi_page_ttl, facts, metadata.view())
                try:
                    yield
                finally:
                    metadata.close()
        finally:
            REGISTRY.unregister(app.state.metrics_collector)
            parts.on_stop()

    app = FastAPI(title="Airlock", version="0.1.0", lifespan=lifespan,
                  description="Curated PyPI, conda and container mirror for ML workspaces, with exception requests and an audit log.")
    app.state.settings = settings
    app.state.policy = parts.policy
    app.state.exceptions = parts.exceptions
    app.state.webhook_urls = settings.webhook_url_list
    app.state.token_cache = TokenCache()
    app.state.devpi_files = parts.devpi_files
    app.state.conda_repodata = {}
    app.state.registry_caches = parts.registry_caches
    app.state.registry_reach = Reachability()
    for key, value in parts.extra_state.items():
        setattr(app.state, key, value)
    app.include_router(pypi_router)
    app.include_router(conda_router)
    app.include_router(containers_router)
    app.include_router(exceptions_router)
    app.include_router(governance_router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, per_path={"/api/v1/gate/decisions": settings.max_gate_decision_bytes})
    exceptions = parts.exceptions
    app.add_middleware(
        Observability, require_token=settings.require_token,
        authenticate=lambda token: app.state.token_cache.lookup(token, exceptions.db),
        deny=lambda principal, path, reason, status: exceptions.deny(principal, f"GET {path}", path, reason, status=status),
    )
    collector = StateCollector(parts.health, exceptions.counts_by_state)
    REGISTRY.register(collector)
    app.state.metrics_collector = collector

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    @app.get("/healthz", tags=["health"], summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="readiness: every part is up and the allowlists are loaded")
    async def readyz() -> Response:
        parts_health = parts.health()
        errors = [str(d) for d in parts.policy.errors]
        ready = all(part["healthy"] or part.get("optional") for part in parts_health.values())
        degraded = sorted(name for name, part in parts_health.items() if not part["healthy"])
        body = {"ready": ready, "degraded": degraded, "parts": parts_health,
                "allowlist": {"generation": parts.policy.current().generation, "rejected_edit": errors}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith("/api/"):
            return refusal(404, f"no such route: {request.url.path} (pip/uv: /pypi/ENV/simple/)", route="unknown")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)

    return app
