"""Reading project pages from devpi, with a short reuse window and one fetch per project at a time.

devpi already caches upstream for minutes; Airlock reuses devpi's answer for `ttl` seconds (2 s by
default) so that a burst of installs does not parse the same 2,000-file page over and over. The
policy is applied after this cache, on every request, so an allowlist change is never delayed.
"""

from __future__ import annotations

import asyncio
import hashlib
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
    digest: bytes = b""
    """Hash of devpi's body: an unchanged page keeps its parsed and rendered forms."""
    rendered: dict[Any, Any] = field(default_factory=dict)
    """Filtered, rendered bodies by (environment, allowlist generation, media type)."""


class DevpiPages:
    def __init__(self, client: httpx.AsyncClient, ttl: float, upstream: str) -> None:
        self._client = client
        self._ttl = ttl
        self._upstream = upstream
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
            await self._confirm_not_found(project)
            entry = CachedPage(None, time.monotonic())
        elif response.status_code == 200:
            digest = hashlib.blake2b(response.content, digest_size=16).digest()
            previous = self._cache.get(project)
            if previous is not None and previous.digest == digest:
                previous.fetched_at = time.monotonic()
                return previous
            try:
                entry = CachedPage(parse_devpi_page(response.content), time.monotonic(), digest)
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

    async def _confirm_not_found(self, project: str) -> None:
        """devpi answers 404 for an uncached project when the upstream is down; a 404 must mean
        "no such project", so ask the upstream itself (headers only, nothing is served from it)."""
        try:
            probe = await self._client.head(f"{self._upstream}{project}/", follow_redirects=True)
        except httpx.HTTPError as exc:
            raise PageUnavailable(f"the upstream index is unreachable ({exc.__class__.__name__}) and {project} is not cached") from None
        if probe.status_code >= 500:
            raise PageUnavailable(f"the upstream index is failing (HTTP {probe.status_code}) and {project} is not cached")
