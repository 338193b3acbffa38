"""`/pypi/{env}/…`: the curated simple index that pip and uv use. The only way to devpi's content.

Nothing of devpi is reachable except through these routes: pages are rebuilt from devpi's JSON
with the policy applied, and a file is streamed only if its project page lists it, its name
parses to that project, and the policy allows its version — checked again on every request.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from mirror.children.devpi import INDEX
from mirror.policy import Allowlist, Ecosystem
from mirror.pypi.pages import CachedPage, DevpiPages, PageUnavailable
from mirror.pypi.simple import (
    JSON_V1,
    TEXT_HTML,
    allowed_files,
    negotiate,
    parse_filename,
    render_html,
    render_index,
    render_json,
    safe_relpath,
)
from mirror.observability import DECISIONS, UPSTREAM_ERRORS
from mirror.refusals import REASON_HEADER, refusal

router = APIRouter(prefix="/pypi/{env}", tags=["pypi"])
_PROJECT = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_NORMALIZE = re.compile(r"[-_.]+")
_PASSED_HEADERS = ("content-type", "content-length", "etag", "last-modified", "cache-control")
_IMMUTABLE = "max-age=365000000, immutable, public"
_METADATA_LIMIT = 1 << 20
_SMALL_FILE = 1 << 20
_METADATA_ENTRIES = 4096


def current_allowlist(request: Request) -> Allowlist:
    return request.app.state.policy.current()


def devpi_pages(request: Request) -> DevpiPages:
    return request.app.state.pypi_pages


AllowlistDep = Annotated[Allowlist, Depends(current_allowlist)]
PagesDep = Annotated[DevpiPages, Depends(devpi_pages)]


def _unknown_environment(allowlist: Allowlist, env: str) -> Response | None:
    known = allowlist.environments(Ecosystem.PYPI)
    if env in known:
        return None
    names = ", ".join(known) or "none: allowlists/pypi.yaml is missing"
    return refusal(404, f"unknown environment {env!r}; known environments: {names} (use /pypi/ENV/simple/)", route="pypi")


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
async def project_page(env: str, project: str, request: Request, allowlist: AllowlistDep, pages: PagesDep) -> Response:
    problem = _unknown_environment(allowlist, env)
    if problem is not None:
        return problem
    if not _PROJECT.match(project):
        return refusal(404, f"{project!r} is not a valid project name", route="pypi", subject=project)
    normalized = _normalized(project)
    if normalized != project:
        return RedirectResponse(f"../{normalized}/", status_code=301)
    listed = allowlist.decide_name(Ecosystem.PYPI, env, project)
    DECISIONS.labels("pypi", env, "allowed" if listed.allowed else "blocked").inc()
    if not listed.allowed:
        return refusal(404, listed.reason, route="pypi", subject=project)
    try:
        cached = await pages.get(project)
    except PageUnavailable as exc:
        UPSTREAM_ERRORS.labels("pypi").inc()
        return refusal(503, f"{exc}; try again when the upstream is reachable", route="pypi", subject=project)
    if cached.page is None:
        return refusal(404, f"{project} is allowed for {env} but the upstream index has no such project", route="pypi", subject=project)
    media = negotiate(request.headers.get("accept", "")) or TEXT_HTML
    body, withheld = _rendered(cached, allowlist, env, project, media)
    headers = {"Vary": "Accept", "X-Airlock-Withheld": str(withheld)}
    if withheld:
        headers[REASON_HEADER] = f"{withheld} file(s) of {project} withheld: their versions are not allowed for {env} (airlock allowlist explain pypi {project}==VERSION --env {env})"
    return Response(body, media_type=media, headers=headers)


def _rendered(cached: CachedPage, allowlist: Allowlist, env: str, project: str, media: str) -> tuple[bytes, int]:
    """Filter and render once per (page, environment, allowlist generation, media type)."""
    key = (env, allowlist.generation, media)
    found = cached.rendered.get(key)
    if found is None:
        page = cached.page
        assert page is not None
        files = allowed_files(page, project, lambda version: allowlist.decide(Ecosystem.PYPI, env, project, version).allowed)
        body = render_json(project, files) if media == JSON_V1 else render_html(project, files)
        found = cached.rendered[key] = (body, len(page.files) - len(files))
    return found


@router.get("/files/{project}/{relpath:path}", summary="A package file (or its PEP 658 metadata), if allowed")
async def package_file(env: str, project: str, relpath: str, request: Request, allowlist: AllowlistDep, pages: PagesDep) -> Response:
    problem = _unknown_environment(allowlist, env)
    if problem is not None:
        return problem
    if not _PROJECT.match(project) or _normalized(project) != project or not safe_relpath(relpath):
        return refusal(404, "no such file: file URLs come from the project pages", route="pypi-files", subject=relpath)
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
        if cached.page is None or file_relpath not in cached.page.relpaths:
            cached = await pages.get(project, fresh=True)
    except PageUnavailable as exc:
        UPSTREAM_ERRORS.labels("pypi").inc()
        return refusal(503, f"{exc}; try again when the upstream is reachable", route="pypi-files", subject=filename)
    if cached.page is None or file_relpath not in cached.page.relpaths:
        return refusal(404, f"{filename} is not listed on {project}'s page upstream", route="pypi-files", subject=filename)
    metadata_cache: OrderedDict[str, bytes] = request.app.state.pypi_metadata
    if relpath in metadata_cache:
        metadata_cache.move_to_end(relpath)
        return Response(metadata_cache[relpath], media_type="application/octet-stream", headers={"Cache-Control": _IMMUTABLE})
    stored = _stored_file(request, relpath)
    if stored is not None:
        headers = {"Cache-Control": _IMMUTABLE}
        if stored.stat().st_size <= _SMALL_FILE:  # one read beats FileResponse's threaded chunks
            return Response(stored.read_bytes(), media_type="application/octet-stream", headers=headers)
        return FileResponse(stored, media_type="application/octet-stream", headers=headers)
    return await _stream_from_devpi(request, f"/{INDEX}/+f/{relpath}", filename)


def _stored_file(request: Request, relpath: str) -> Path | None:
    """The file in devpi's store, if devpi has already fetched and verified it.

    devpi writes each file under a temporary name and renames it into place once complete, and
    the path carries the file's hash, so a file that exists there is whole and immutable.
    Serving it from disk skips a second HTTP hop; anything not yet stored goes through devpi.
    """
    root: Path | None = request.app.state.devpi_files
    if root is None or relpath.endswith(".metadata"):
        return None
    path = root / relpath
    return path if path.is_file() else None


async def _stream_from_devpi(request: Request, path: str, filename: str) -> Response:
    client: httpx.AsyncClient = request.app.state.devpi_client
    try:
        upstream = await client.send(client.build_request("GET", path), stream=True)
    except httpx.HTTPError as exc:
        return refusal(503, f"the PyPI cache (devpi) did not answer ({exc.__class__.__name__}); try again", route="pypi-files", subject=filename)
    if upstream.status_code != 200:
        await upstream.aclose()
        if upstream.status_code == 404:
            return refusal(404, f"{filename}: the upstream index no longer has this file", route="pypi-files", subject=filename)
        return refusal(503, f"{filename}: the upstream index is unreachable and the file is not cached (devpi answered {upstream.status_code})",
                       route="pypi-files", subject=filename)
    headers = {name: upstream.headers[name] for name in _PASSED_HEADERS if name in upstream.headers}
    if path.endswith(".metadata") and int(upstream.headers.get("content-length", _METADATA_LIMIT + 1)) <= _METADATA_LIMIT:
        # Metadata is small and immutable (its path carries the file's hash): keep it in memory.
        body = await upstream.aread()
        await upstream.aclose()
        cache: OrderedDict[str, bytes] = request.app.state.pypi_metadata
        cache[path.split("/+f/", 1)[1]] = body
        while len(cache) > _METADATA_ENTRIES:
            cache.popitem(last=False)
        return Response(body, headers=headers)
    return StreamingResponse(upstream.aiter_raw(), headers=headers, background=BackgroundTask(upstream.aclose))
