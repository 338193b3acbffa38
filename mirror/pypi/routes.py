"""`/pypi/{env}/…`: the curated simple index that pip and uv use. The only way to devpi's content.

Nothing of devpi is reachable except through these routes: pages are rebuilt from devpi's JSON
with the policy applied, and a file is streamed only if its project page lists it, its name
parses to that project, and the policy allows its version — checked again on every request.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from mirror.clock import utc_now
from mirror.observability import DECISIONS, UPSTREAM_ERRORS
from mirror.parts import AllowlistDep
from mirror.policy import Allowlist, Ecosystem
from mirror.pypi.filtering import LicenceOf, judge_file, rendered
from mirror.pypi.metadata import CoreMetadata, MetadataRefused
from mirror.pypi.pages import PageUnavailable, ProjectPages
from mirror.pypi.simple import (
    JSON_V1,
    TEXT_HTML,
    FileLink,
    ProjectStatus,
    negotiate,
    parse_filename,
    render_html,
    render_index,
    render_json,
    safe_relpath,
)
from mirror.refusals import REASON_HEADER, header_safe, refusal

router = APIRouter(prefix="/pypi/{env}", tags=["pypi"])
log = logging.getLogger("airlock.refusals")
_PROJECT = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_NORMALIZE = re.compile(r"[-_.]+")
_PASSED_HEADERS = ("content-type", "content-length", "etag", "last-modified", "cache-control")
_IMMUTABLE = "max-age=365000000, immutable, public"
_SMALL_FILE = 1 << 20


def project_pages(request: Request) -> ProjectPages:
    return request.app.state.parts.pypi_pages


def core_metadata(request: Request) -> CoreMetadata:
    return request.app.state.parts.pypi_metadata


def stored_files(request: Request) -> Path | None:
    """devpi's store of verified files, or None (no devpi on this machine)."""
    return request.app.state.parts.devpi_files


PagesDep = Annotated[ProjectPages, Depends(project_pages)]
MetadataDep = Annotated[CoreMetadata, Depends(core_metadata)]
StoredFilesDep = Annotated["Path | None", Depends(stored_files)]


def _unknown_environment(allowlist: Allowlist, env: str) -> Response | None:
    known = allowlist.environments(Ecosystem.PYPI)
    if env in known:
        return None
    names = ", ".join(known) or "none: allowlists/pypi.yaml is missing"
    return refusal(
        404, f"unknown environment {env!r}; known environments: {names} (use /pypi/ENV/simple/)", route="pypi"
    )


def _normalized(project: str) -> str:
    return _NORMALIZE.sub("-", project).lower()


@router.get("/simple", include_in_schema=False)
async def index_without_slash(env: str) -> Response:
    return RedirectResponse("simple/", status_code=301)


@router.get("/simple/", summary="PEP 503/691 index of the projects allowed in ENV")
async def simple_index(env: str, request: Request, allowlist: AllowlistDep) -> Response:
    problem = _unknown_environment(allowlist, env)
    if problem is not None:
        return problem
    media = negotiate(request.headers.get("accept", "")) or TEXT_HTML
    body = render_index(allowlist.names(Ecosystem.PYPI, env), media == JSON_V1)
    return Response(body, media_type=media, headers={"Vary": "Accept"})


@router.get("/simple/{project}", include_in_schema=False)
async def project_without_slash(env: str, project: str) -> Response:
    return RedirectResponse(f"{_normalized(project)}/", status_code=301)


@router.get("/simple/{project}/", summary="PEP 503/691 project page with the allowed files only")
async def project_page(
    env: str, project: str, request: Request, allowlist: AllowlistDep, pages: PagesDep, metadata: MetadataDep
) -> Response:
    problem = _unknown_environment(allowlist, env)
    if problem is not None:
        return problem
    if not _PROJECT.match(project):
        return refusal(404, f"{project[:200]!r} is not a valid project name", route="pypi", subject=project[:200])
    normalized = _normalized(project)
    if normalized != project:
        return RedirectResponse(f"../{normalized}/", status_code=301)
    media = negotiate(request.headers.get("accept", "")) or TEXT_HTML
    listed = allowlist.decide_name(Ecosystem.PYPI, env, project)
    DECISIONS.labels("pypi", env, "allowed" if listed.allowed else "blocked").inc()
    if not listed.allowed:
        # PEP 792: a page that exists and serves nothing, so uv's first-index strategy stops here
        # instead of trying another index; installers that show the status print the reason.
        return _quarantined(project, media, listed.reason)
    try:
        cached = await pages.get(project)
    except PageUnavailable as exc:
        UPSTREAM_ERRORS.labels("pypi").inc()
        return refusal(503, f"{exc}; try again when the upstream is reachable", route="pypi", subject=project)
    if cached.page is None:
        return refusal(
            404,
            f"{project} is allowed for {env}, but {cached.missing or 'the upstream index has no such project'}",
            route="pypi",
            subject=project,
        )
    licence_of = _licences(metadata) if allowlist.wants_licence(Ecosystem.PYPI, env, project) else None
    body, withheld, reason = rendered(cached, allowlist, env, project, media, utc_now(), licence_of)
    headers = {"Vary": "Accept", "X-Airlock-Withheld": str(withheld)}
    if reason:
        headers[REASON_HEADER] = header_safe(reason)
    return Response(body, media_type=media, headers=headers)


def _quarantined(project: str, media: str, reason: str) -> Response:
    log.info("refused pypi %s: %s", project, reason, extra={"status": 200, "route": "pypi", "subject": project})
    status = ProjectStatus("quarantined", reason)
    body = render_json(project, [], status) if media == JSON_V1 else render_html(project, [], status)
    return Response(
        body,
        media_type=media,
        headers={"Vary": "Accept", REASON_HEADER: header_safe(reason), "X-Airlock-Withheld": "0"},
    )


@router.api_route(
    "/files/{project}/{relpath:path}",
    methods=["GET", "HEAD"],
    summary="A package file (or its PEP 658 metadata), if allowed; byte ranges for files Airlock holds",
)
async def package_file(
    env: str,
    project: str,
    relpath: str,
    request: Request,
    allowlist: AllowlistDep,
    pages: PagesDep,
    metadata: MetadataDep,
    store: StoredFilesDep,
) -> Response:
    problem = _unknown_environment(allowlist, env)
    if problem is not None:
        return problem
    if not _PROJECT.match(project) or _normalized(project) != project or not safe_relpath(relpath):
        return refusal(
            404, "no such file: file URLs come from the project pages", route="pypi-files", subject=relpath[:300]
        )
    filename = relpath.rsplit("/", 1)[-1]
    file_relpath = relpath.removesuffix(".metadata")
    parsed = parse_filename(file_relpath.rsplit("/", 1)[-1])
    if parsed is None or parsed[0] != project:
        return refusal(404, f"{filename} is not a wheel or sdist of {project}", route="pypi-files", subject=relpath)
    decision = allowlist.decide(Ecosystem.PYPI, env, project, parsed[1])
    DECISIONS.labels("pypi", env, "allowed" if decision.allowed else "blocked").inc()
    if not decision.allowed:
        return refusal(404, decision.reason, route="pypi-files", subject=filename)
    try:
        cached = await pages.get(project)
        if cached.page is None or cached.page.link(file_relpath) is None:
            cached = await pages.get(project, fresh=True)
    except PageUnavailable as exc:
        UPSTREAM_ERRORS.labels("pypi").inc()
        return refusal(503, f"{exc}; try again when the upstream is reachable", route="pypi-files", subject=filename)
    link = cached.page.link(file_relpath) if cached.page is not None else None
    if link is None:
        return refusal(
            404, f"{filename} is not listed on {project}'s page upstream", route="pypi-files", subject=filename
        )
    licence_of = _licences(metadata) if allowlist.wants_licence(Ecosystem.PYPI, env, project) else None
    judged = judge_file(allowlist, env, project, parsed[1], link, licence_of, utc_now())
    if not judged.allowed:
        return refusal(404, judged.reason, route="pypi-files", subject=filename)
    if relpath.endswith(".metadata"):
        if not link.core_metadata:
            return refusal(
                404,
                f"no metadata is served for {link.filename}: read it from the file",
                route="pypi-files",
                subject=filename,
            )
        try:
            body = await metadata.get(link, lambda relpath: pages.open_file(project, relpath))
        except MetadataRefused as exc:
            if exc.status == 502:
                pages.forget(project)
            return refusal(exc.status, exc.reason, route="pypi-files", subject=filename)
        return Response(body, media_type="application/octet-stream", headers={"Cache-Control": _IMMUTABLE})
    stored = _stored_file(store, relpath)
    if stored is not None:
        headers = {"Cache-Control": _IMMUTABLE}
        if stored.stat().st_size <= _SMALL_FILE and "range" not in request.headers and request.method == "GET":
            # one read beats FileResponse's threaded chunks
            return Response(
                stored.read_bytes(),
                media_type="application/octet-stream",
                headers={**headers, "Accept-Ranges": "bytes"},
            )
        return PackageFileResponse(stored, media_type="application/octet-stream", headers=headers)
    if request.method == "HEAD":
        # Not held yet: no byte ranges (uv then downloads the whole file, which devpi keeps)
        length = {"Content-Length": str(link.size)} if link.size is not None else {}
        return Response(b"", media_type="application/octet-stream", headers=length)
    return await _stream_from_devpi(pages, project, link)


class PackageFileResponse(FileResponse):
    """Files of hundreds of MB: 1 MiB reads (Starlette's 64 KiB cost a thread hop per chunk, ~1 s
    of CPU for an ML install's wheels on two cores)."""

    chunk_size = 1 << 20


def _licences(metadata: CoreMetadata) -> LicenceOf:
    return lambda link: metadata.licence_of(link.relpath, link.filename)


def _stored_file(root: Path | None, relpath: str) -> Path | None:
    """The file in devpi's store, if devpi has already fetched and verified it.

    devpi writes each file under a temporary name and renames it into place once complete, and
    the path carries the file's hash, so a file that exists there is whole and immutable.
    Serving it from disk skips a second HTTP hop; anything not yet stored goes through devpi.
    """
    if root is None:
        return None
    path = root / relpath
    return path if path.is_file() else None


async def _stream_from_devpi(pages: ProjectPages, project: str, link: FileLink) -> Response:
    filename = link.filename
    try:
        upstream = await pages.open_file(project, link.relpath, link.upstream_url)
    except httpx.HTTPError as exc:
        return refusal(
            503,
            f"the PyPI cache (devpi) did not answer ({exc.__class__.__name__}); try again",
            route="pypi-files",
            subject=filename,
        )
    if upstream.status_code != 200:
        await upstream.aclose()
        if upstream.status_code == 404:
            return refusal(
                404, f"{filename}: the upstream index no longer has this file", route="pypi-files", subject=filename
            )
        return refusal(
            503,
            f"{filename}: the upstream index is unreachable and the file is not cached (devpi answered {upstream.status_code})",
            route="pypi-files",
            subject=filename,
        )
    headers = {name: upstream.headers[name] for name in _PASSED_HEADERS if name in upstream.headers}
    return StreamingResponse(
        _verified(upstream.aiter_raw(), link), headers=headers, background=BackgroundTask(upstream.aclose)
    )


class HashMismatch(Exception):
    """A file's bytes do not have the sha256 its page gives: the response is cut short."""


async def _verified(chunks: AsyncIterator[bytes], link: FileLink) -> AsyncIterator[bytes]:
    """Stream `chunks`, holding the last one back until the whole file's sha256 is known: a file
    whose hash is not the page's never reaches a client whole (the connection ends short of it)."""
    digest = hashlib.sha256()
    held: bytes | None = None
    async for chunk in chunks:
        if held is not None:
            yield held
        digest.update(chunk)
        held = chunk
    if link.sha256 and digest.hexdigest() != link.sha256:
        log.warning(
            "cut %s short: its sha256 %s is not the page's %s (the upstream serves other bytes than it lists)",
            link.filename,
            digest.hexdigest(),
            link.sha256,
        )
        raise HashMismatch(link.filename)
    if held is not None:
        yield held
