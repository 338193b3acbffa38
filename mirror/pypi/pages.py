"""Project pages: devpi's links with the upstream's own facts, one fetch per project at a time.

devpi caches the upstream's pages and files and keeps serving them when the upstream is down, but
keeps no PEP 700 `size`/`upload-time`, no PEP 658 metadata hashes and no PEP 792 status; Airlock
reads the upstream's page itself for those (`UpstreamFacts`, beside devpi's fetch, kept on disk so
they survive an upstream outage) and merges them in (`upstream_page.with_upstream_facts`).

devpi's answer is reused for `ttl` seconds (2 s by default) so that a burst of installs does not
parse the same 2,000-file page over and over. The policy is applied after this cache, on every
request, so an allowlist change is never delayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mirror.bounded_cache import BoundedCache
from mirror.children.devpi import INDEX
from mirror.pypi.simple import JSON_V1, ProjectPage, parse_devpi_page
from mirror.pypi.upstream_page import (
    ACCEPT,
    UnreadablePage,
    UpstreamPage,
    page_from_json,
    page_from_upstream,
    page_to_json,
    parse_upstream_page,
    with_upstream_facts,
)

log = logging.getLogger("airlock.pypi")
_MAX_PROJECTS = 4096
_MAX_CACHED_FILES = 400_000
"""Files listed across the pages kept in memory (about 1 KiB each with their rendered forms)."""
_MAX_UPSTREAM_PAGE = 64 << 20
"""Bytes: the largest project pages on PyPI are a few MB of JSON; more is not a page."""
_NEW_FILE_RECHECK = 60.0
"""Seconds: when devpi lists a file the stored facts lack, ask the upstream again at most this often."""
FILE_BEING_STORED_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)
"""Waits (s) before asking devpi again for a file it answered 500 for while another request stores it."""


class PageUnavailable(Exception):
    """No page can be served now (the upstream is unreachable and nothing is cached, or its page
    cannot be read); the message says which, for a 503."""


@dataclass
class CachedPage:
    page: ProjectPage | None
    """None: the upstream does not know the project (`missing` says so)."""
    fetched_at: float
    digest: bytes = b""
    """Hash of what the page was built from: an unchanged page keeps its rendered forms."""
    rendered: dict[Any, Any] = field(default_factory=dict)
    """Filtered, rendered bodies by (environment, allowlist generation, media type)."""
    missing: str = ""


@dataclass(frozen=True)
class FactsAnswer:
    status: str
    """`found`, `missing` (the upstream answered 404), `unreachable` or `unreadable`."""
    page: UpstreamPage | None = None
    reason: str = ""


class UpstreamFacts:
    """The upstream's own project pages, parsed and checked, in memory and on disk."""

    def __init__(self, client: httpx.AsyncClient, upstream: str, folder: Path, ttl: float) -> None:
        self._client = client
        self._upstream = upstream
        self._folder = folder
        self._ttl = ttl
        self._memory: BoundedCache[str, tuple[float, UpstreamPage]] = BoundedCache(
            _MAX_PROJECTS, _MAX_CACHED_FILES, lambda entry: _files_weight(entry[1])
        )
        self._asked: dict[str, float] = {}

    def due(self, project: str, filenames: frozenset[str] = frozenset()) -> bool:
        """True when the stored facts are missing, older than the TTL, or lack a file devpi lists
        (an upload since: asked again at most once a minute)."""
        stored = self._load(project)
        now = time.time()
        if stored is None or now - stored[0] >= self._ttl:
            return now - self._asked.get(project, 0.0) >= 1.0
        if filenames - stored[1].files.keys() - stored[1].withheld.keys():
            return now - self._asked.get(project, 0.0) >= _NEW_FILE_RECHECK
        return False

    def stored(self, project: str) -> UpstreamPage | None:
        found = self._load(project)
        return found[1] if found else None

    def stamp(self, project: str) -> float:
        """When the stored facts were fetched (0: none): part of a page's identity."""
        found = self._load(project)
        return found[0] if found else 0.0

    async def fetch(self, project: str) -> FactsAnswer:
        if len(self._asked) > 65_536:  # only paces repeated asks: forgetting costs one early ask
            self._asked.clear()
        self._asked[project] = time.time()
        url = f"{self._upstream}{project}/"
        try:
            async with self._client.stream("GET", url, headers={"Accept": ACCEPT}, follow_redirects=True) as response:
                if response.status_code == 404:
                    return FactsAnswer("missing", reason=f"the upstream index has no project {project}")
                if response.status_code != 200:
                    return FactsAnswer("unreachable", reason=f"the upstream index answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_UPSTREAM_PAGE:
                        return FactsAnswer(
                            "unreadable", reason=f"the upstream's page is over {_MAX_UPSTREAM_PAGE >> 20} MiB"
                        )
                content_type = response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            return FactsAnswer("unreachable", reason=f"the upstream index is unreachable ({exc.__class__.__name__})")
        try:
            page = parse_upstream_page(bytes(body), content_type, url)
        except UnreadablePage as exc:
            log.warning("withholding %s: %s", project, exc, extra={"project": project})
            return FactsAnswer("unreadable", reason=str(exc))
        await asyncio.to_thread(self._save, project, page)
        return FactsAnswer("found", page)

    async def open(self, url: str) -> httpx.Response:
        """A streaming GET of a file the upstream's page lists (the caller closes it)."""
        return await self._client.send(self._client.build_request("GET", url), stream=True, follow_redirects=True)

    def _load(self, project: str) -> tuple[float, UpstreamPage] | None:
        found = self._memory.get(project)
        if found is None:
            try:
                data = json.loads((self._folder / f"{project}.json").read_bytes())
                found = (float(data["fetched"]), page_from_json(data))
            except (OSError, ValueError, KeyError, TypeError):
                return None
            self._memory.put(project, found)
        return found

    def _save(self, project: str, page: UpstreamPage) -> None:
        fetched = time.time()
        self._memory.put(project, (fetched, page))
        self._folder.mkdir(parents=True, exist_ok=True)
        document = {**page_to_json(page), "fetched": fetched}
        temporary = self._folder / f".{project}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(document, separators=(",", ":")))
        temporary.replace(self._folder / f"{project}.json")


def _files_weight(page: UpstreamPage | ProjectPage | None) -> int:
    return 1 + (len(page.files) + len(page.withheld) if page is not None else 0)


@dataclass(frozen=True)
class MetadataView:
    """What the page merge needs from the metadata store (`mirror.pypi.metadata`)."""

    extract: bool
    hashes: Callable[[], dict[str, str]]
    distrusted: Callable[[], frozenset[str]]
    version: Callable[[], int]


class ProjectPages:
    def __init__(self, client: httpx.AsyncClient, ttl: float, facts: UpstreamFacts, metadata: MetadataView) -> None:
        self._client = client
        self._ttl = ttl
        self._facts = facts
        self._metadata = metadata
        self._cache: BoundedCache[str, CachedPage] = BoundedCache(
            _MAX_PROJECTS, _MAX_CACHED_FILES, lambda entry: _files_weight(entry.page)
        )
        self._inflight: dict[str, asyncio.Future[CachedPage]] = {}
        self._ingesting: dict[str, asyncio.Task] = {}
        self._warm: dict[str, asyncio.Task] = {}
        self._warming = asyncio.Semaphore(4)

    async def get(self, project: str, *, fresh: bool = False) -> CachedPage:
        """The project's page; `fresh` skips the reuse window (a file missing from a cached page)."""
        cached = self._cache.get(project)
        if cached is not None and not fresh and time.monotonic() - cached.fetched_at < self._ttl:
            return cached
        return await run_once(self._inflight, project, lambda: self._fetch(project))

    def forget(self, project: str) -> None:
        """Drop the reused page (its metadata was found untrustworthy): the next request rebuilds it."""
        self._cache.pop(project)

    async def _fetch(self, project: str) -> CachedPage:
        """From the upstream's own page when Airlock has it (devpi's file paths follow from the
        files' sha256, and devpi reads the page in the background); from devpi's cached page when
        the upstream cannot be reached, or lists a file without a sha256."""
        upstream = None
        if self._facts.due(project):
            answer = await self._facts.fetch(project)
            if answer.status == "missing":
                return self._keep(project, CachedPage(None, time.monotonic(), missing=answer.reason))
            if answer.status == "unreadable":
                raise PageUnavailable(
                    f"the upstream's page for {project} cannot be read ({answer.reason}); Airlock withholds it"
                )
            if answer.status == "found":
                self._ingest(project)
            upstream = answer.page
            unreachable = answer.reason if answer.status == "unreachable" else ""
        else:
            unreachable = ""
        upstream = upstream or self._facts.stored(project)
        page = page_from_upstream(upstream) if upstream is not None else None
        if page is None:
            return await self._from_devpi(project, upstream, unreachable)
        return self._merged(project, page, upstream, b"")

    async def _from_devpi(self, project: str, upstream: UpstreamPage | None, unreachable: str) -> CachedPage:
        try:
            response = await self._client.get(f"/{INDEX}/+simple/{project}/", headers={"Accept": JSON_V1})
        except httpx.HTTPError as exc:
            raise PageUnavailable(f"the PyPI cache (devpi) did not answer: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            if unreachable:
                raise PageUnavailable(f"{unreachable}, and {project} is not cached")
            raise PageUnavailable(
                f"the PyPI cache (devpi) could not load {project} (it answered {response.status_code})"
            )
        try:
            devpi_page = parse_devpi_page(response.content)
        except ValueError:
            raise PageUnavailable("the PyPI cache (devpi) returned a page Airlock cannot read") from None
        return self._merged(project, devpi_page, upstream, response.content)

    def _merged(self, project: str, page: ProjectPage, upstream: UpstreamPage | None, devpi_body: bytes) -> CachedPage:
        metadata = self._metadata
        digest = hashlib.blake2b(devpi_body, digest_size=16)
        digest.update(f"{self._facts.stamp(project)}:{metadata.version()}".encode())
        previous = self._cache.get(project)
        if previous is not None and previous.digest == digest.digest():
            previous.fetched_at = time.monotonic()
            return previous
        merged = with_upstream_facts(
            page,
            upstream,
            extract_metadata=metadata.extract,
            metadata_hashes=metadata.hashes(),
            distrusted=metadata.distrusted(),
        )
        for filename, why in merged.withheld:
            log.warning("withholding %r of %s: %s", filename[:120], project, why, extra={"project": project})
        return self._keep(project, CachedPage(merged, time.monotonic(), digest.digest()))

    def _ingest(self, project: str) -> None:
        """Have devpi read the project's page now, so that it knows the files when one is asked for."""
        if project not in self._ingesting:
            task = asyncio.create_task(self._client.get(f"/{INDEX}/+simple/{project}/", headers={"Accept": JSON_V1}))
            self._ingesting[project] = task
            task.add_done_callback(
                lambda done: (self._ingesting.pop(project, None), done.exception() if not done.cancelled() else None)
            )

    async def open_file(self, project: str, relpath: str, upstream_url: str | None = None) -> httpx.Response:
        """A streaming response for the file at devpi's `+f/{relpath}` (the caller closes it).

        devpi serves a file only once it has read a page that lists it. While it is still reading
        one (a big project's page takes it a second or two), a file the upstream's page located is
        fetched from the upstream itself — the caller checks its sha256 as for any file — and devpi
        fetches its own copy once it has read the page. When devpi's cached page predates the file,
        devpi is asked to read the page again (once)."""
        pending = self._ingesting.get(project)
        if pending is not None and upstream_url is not None:
            self._warm_up(project, relpath, pending)
            return await self._facts.open(upstream_url)
        if pending is not None:
            await asyncio.wait([pending])
        for attempt in range(2):
            response = await self._send_file_request(relpath)
            if response.status_code != 404 or attempt:
                return response
            await response.aclose()
            await self._client.post(f"/{INDEX}/+simple/{project}/refresh")
        raise AssertionError("unreachable")

    async def _send_file_request(self, relpath: str) -> httpx.Response:
        """devpi 6 answers 500 to a request for a file that another request is still storing (it logs
        "Waiting for file … in event serial N" and fails an assertion): a CI fleet asking for a new
        release at once meets this. The file is there a moment later, so ask again, briefly."""
        for delay in (*FILE_BEING_STORED_DELAYS, None):
            response = await self._client.send(self._client.build_request("GET", f"/{INDEX}/+f/{relpath}"), stream=True)
            if response.status_code != 500 or delay is None:
                return response
            await response.aclose()
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _warm_up(self, project: str, relpath: str, ingestion: asyncio.Task) -> None:
        """Once devpi has read the project's page, have it fetch and keep the file."""

        async def fetch() -> None:
            await asyncio.wait([ingestion])
            async with self._warming, self._client.stream("GET", f"/{INDEX}/+f/{relpath}") as response:
                async for _ in response.aiter_raw():
                    pass

        if relpath not in self._warm and len(self._warm) < _MAX_PROJECTS:
            task = asyncio.create_task(fetch())
            self._warm[relpath] = task
            task.add_done_callback(
                lambda done: (self._warm.pop(relpath, None), done.exception() if not done.cancelled() else None)
            )

    def _keep(self, project: str, entry: CachedPage) -> CachedPage:
        self._cache.put(project, entry)
        return entry


async def run_once(inflight: dict[str, asyncio.Future], key: str, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` once for concurrent callers with the same key; they all get its result or error."""
    pending = inflight.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        result = await work()
        future.set_result(result)
        return result
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters re-raise it themselves
        raise
    finally:
        del inflight[key]
