"""The FastAPI application: one router per area, shared state on `app.state`.

`create_app` is given running parts (the allowlist watcher, the devpi child); it starts nothing
itself, so tests and `airlock up` assemble it the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from mirror.allowlist_files import AllowlistWatcher
from mirror.pypi.pages import DevpiPages
from mirror.pypi.routes import router as pypi_router
from mirror.refusals import refusal
from mirror.settings import Settings


def create_app(
    settings: Settings,
    policy: AllowlistWatcher,
    devpi_url: str,
    health: Callable[[], dict[str, Any]],
    on_stop: Callable[[], None] = lambda: None,
    devpi_files: Path | None = None,
) -> FastAPI:
    """`on_stop` runs at shutdown, inside uvicorn's lifespan: uvicorn re-raises the SIGTERM it
    caught once it has shut down, so code after `server.run()` may never run."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        timeout = httpx.Timeout(settings.upstream_timeout, connect=5.0)
        try:
            async with httpx.AsyncClient(base_url=devpi_url, limits=limits, timeout=timeout) as client:
                app.state.devpi_client = client
                app.state.pypi_pages = DevpiPages(client, settings.pypi_page_ttl, settings.pypi_upstream)
                yield
        finally:
            on_stop()

    app = FastAPI(title="Airlock", version="0.1.0", lifespan=lifespan,
                  description="Curated PyPI, conda and container mirror for ML workspaces.")
    app.state.settings = settings
    app.state.policy = policy
    app.state.devpi_files = devpi_files
    app.state.pypi_metadata = OrderedDict()
    app.include_router(pypi_router)

    @app.get("/healthz", tags=["health"], summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="readiness: every part is up and the allowlists are loaded")
    async def readyz() -> Response:
        parts = health()
        errors = [str(d) for d in policy.errors]
        ready = all(part["healthy"] for part in parts.values())
        body = {"ready": ready, "parts": parts, "allowlist": {"generation": policy.current().generation, "rejected_edit": errors}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return refusal(404, f"no such route: {request.url.path} (pip/uv: /pypi/ENV/simple/)", route="unknown")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": exc.errors()}, status_code=422)

    return app
