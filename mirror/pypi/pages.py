"""Reading project pages from devpi, with a short reuse window and one fetch per project at a time.

devpi already caches upstream for minutes; Airlock reuses devpi's answer for `ttl` seconds (2 s by
default) so that a burst of installs does not parse the same 2,000-file page over and over. The
policy is applied after this cache, on every request, so an allowlist change is never delayed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx

from mirror.children.devpi import INDEX
from mirror.pypi.simple import JSON_V1, ProjectPage, parse_devpi_page

_MAX_PROJECTS = 4096


class PageUnavailable(Exception):
    """devpi could not produce the page: the upstream is unreachable and nothing is cached."""


@dataclass
class CachedPage:
    page: ProjectPage | None
    """None: the upstream does not know the project."""
    fetched_at: float
    rendered: dict[Any, Any] = field(default_factory=dict)
    """Filtered, rendered bodies by (environment, allowlist generation, media type)."""


class DevpiPages:
    def __init__(self, client: httpx.AsyncClient, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: OrderedDict[str, CachedPage] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[CachedPage]] = {}

    async def get(self, project: str, *, fresh: bool = False) -> CachedPage:
        """The project's page; `fresh` skips the reuse window (a file missing from a cached page)."""
        cached = self._cache.get(project)
        if cached is not None and not fresh and time.monotonic() - cached.fetched_at < self._ttl:
            self._cache.move_to_end(project)
            return cached
        pending = self._inflight.get(project)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedPage] = asyncio.get_running_loop().create_future()
        self._inflight[project] = future
        try:
            result = await self._fetch(project)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[project]

    async def _fetch(self, project: str) -> CachedPage:
        try:
            response = await self._client.get(f"/{INDEX}/+simple/{project}/", headers={"Accept": JSON_V1})
        except httpx.HTTPError as exc:
            raise PageUnavailable(f"the PyPI cache (devpi) did not answer: {exc.__class__.__name__}") from None
        if response.status_code == 404:
            entry = CachedPage(None, time.monotonic())
        elif response.status_code == 200:
            try:
                entry = CachedPage(parse_devpi_page(response.content), time.monotonic())
            except ValueError:
                raise PageUnavailable("the PyPI cache (devpi) returned a page Airlock cannot read") from None
        else:
            raise PageUnavailable(
                f"the upstream index is unreachable and {project} is not cached (devpi answered {response.status_code})"
            )
        self._cache[project] = entry
        self._cache.move_to_end(project)
        while len(self._cache) > _MAX_PROJECTS:
            self._cache.popitem(last=False)
        return entry
