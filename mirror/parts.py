"""The running service's parts, in one typed object, and the FastAPI dependencies that hand them to
routes. `airlock up` (or a test) builds `ServiceParts`; the app starts the parts that need its
event loop (HTTP clients, the page and metadata caches) in its lifespan. Routes name what they
need as a dependency — never an attribute of `app.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from mirror.allowlist_watch import AllowlistWatcher
from mirror.auth.access import AccessControl
from mirror.exception_requests.workflow import ExceptionRequests
from mirror.policy import Allowlist
from mirror.settings import Settings
from mirror.store.db import Database
from mirror.ui.sessions import UiSessions

if TYPE_CHECKING:
    import httpx

    from mirror.containers.routes import Reachability
    from mirror.pypi.metadata import CoreMetadata
    from mirror.pypi.pages import ProjectPages


@dataclass
class Clients:
    """Pooled HTTP clients, made when the app starts (they belong to its event loop)."""

    devpi: httpx.AsyncClient
    registry: httpx.AsyncClient
    upstream: httpx.AsyncClient


@dataclass
class ServiceParts:
    settings: Settings
    database: Database
    access: AccessControl
    policy: AllowlistWatcher
    requests: ExceptionRequests
    health: Callable[[], dict[str, Any]]
    devpi_url: str
    devpi_files: Path | None = None
    """devpi's store of verified files (served from disk, skipping a hop)."""
    registry_caches: dict[str, str] = field(default_factory=dict)
    """Upstream name -> URL of its pull-through registry cache on loopback."""
    on_stop: Callable[[], None] = lambda: None
    """Runs at shutdown inside uvicorn's lifespan: uvicorn re-raises the SIGTERM it caught once it
    has shut down, so code after `server.run()` may never run."""
    clients: Clients | None = None
    pypi_pages: ProjectPages | None = None
    pypi_metadata: CoreMetadata | None = None
    registry_reach: Reachability | None = None
    ui_sessions: UiSessions = field(default_factory=UiSessions)
    """Sign-in sessions of the web UI (in memory)."""
    conda_repodata: dict = field(default_factory=dict)
    """Filtered repodata per (build, subdir, environment, allowlist generation)."""


def service_parts(request: Request) -> ServiceParts:
    return request.app.state.parts


def current_allowlist(request: Request) -> Allowlist:
    return request.app.state.parts.policy.current()


PartsDep = Annotated[ServiceParts, Depends(service_parts)]
AllowlistDep = Annotated[Allowlist, Depends(current_allowlist)]
