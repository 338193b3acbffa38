"""The FastAPI application: one router per area, assembled around `ServiceParts`.

`create_app` is given the running parts (allowlist watcher, devpi child, database, workflow); it
starts only what needs its event loop (HTTP clients, page and metadata caches), so tests and
`airlock up` assemble it the same way.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse

from mirror.api import errors
from mirror.api.body_guard import ApiBodyGuard
from mirror.api.exception_requests import router as exceptions_router
from mirror.api.governance import router as governance_router
from mirror.api.health import router as health_router
from mirror.conda.routes import router as conda_router
from mirror.containers.routes import Reachability
from mirror.containers.routes import router as containers_router
from mirror.exception_requests.store import counts_by_state
from mirror.observability import REGISTRY, Observability, StateCollector
from mirror.parts import Clients, ServiceParts
from mirror.path_limits import PathLimits
from mirror.pypi.metadata import CoreMetadata
from mirror.pypi.pages import ProjectPages, UpstreamFacts
from mirror.pypi.routes import router as pypi_router
from mirror.ui import audit_pages as ui_audit
from mirror.ui import requests_pages as ui_requests
from mirror.ui import sign_in as ui_sign_in
from mirror.ui.context import SignInRequired, UiHeaders, to_sign_in


def create_app(parts: ServiceParts) -> FastAPI:
    settings = parts.settings
    collector = StateCollector(
        parts.health, lambda: counts_by_state(parts.database), lambda: dict(parts.access.denials.totals)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        timeout = httpx.Timeout(settings.upstream_timeout, connect=5.0)
        REGISTRY.register(collector)
        try:
            async with (
                httpx.AsyncClient(base_url=parts.devpi_url, limits=limits, timeout=timeout) as devpi,
                httpx.AsyncClient(limits=limits, timeout=timeout, follow_redirects=False) as registry,
                httpx.AsyncClient(limits=limits, timeout=timeout) as upstream,
            ):
                parts.clients = Clients(devpi, registry, upstream)
                pypi_data = settings.data_dir / "pypi"
                parts.pypi_metadata = CoreMetadata(
                    pypi_data / "metadata",
                    parts.devpi_files,
                    extract=settings.pypi_metadata == "extract",
                    timeout=settings.upstream_timeout,
                )
                facts = UpstreamFacts(
                    upstream, settings.pypi_upstream, pypi_data / "upstream", settings.devpi_cache_expiry
                )
                parts.pypi_pages = ProjectPages(devpi, settings.pypi_page_ttl, facts, parts.pypi_metadata.view())
                try:
                    yield
                finally:
                    parts.pypi_metadata.close()
        finally:
            REGISTRY.unregister(collector)
            parts.on_stop()

    app = FastAPI(
        title="Airlock",
        version="0.1.0",
        lifespan=lifespan,
        description="Curated PyPI, conda and container mirror for ML workspaces, with exception requests and an audit log.",
    )
    parts.registry_reach = Reachability()
    app.state.parts = parts
    for router in (
        pypi_router,
        conda_router,
        containers_router,
        exceptions_router,
        governance_router,
        health_router,
        ui_sign_in.router,
        ui_requests.router,
        ui_audit.router,
    ):
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=Path(ui_requests.__file__).parent / "static"), name="ui-static")

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request, exc: SignInRequired):
        return to_sign_in(exc.reason)

    @app.get("/ui", include_in_schema=False)
    async def ui_root():
        return RedirectResponse("/ui/", status_code=308)

    app.add_middleware(
        ApiBodyGuard,
        access=parts.access,
        limit=settings.max_body_bytes,
        large_limit=settings.max_gate_decision_bytes,
        large_paths=frozenset({"/api/v1/gate/decisions"}),
    )
    app.add_middleware(Observability, require_token=settings.require_token, access=parts.access)
    app.add_middleware(UiHeaders)
    app.add_middleware(PathLimits)
    errors.install(app)
    return app
