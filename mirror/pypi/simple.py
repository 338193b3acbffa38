"""Simple-repository pages: read devpi's PEP 691 JSON, keep the allowed files, render PEP 503/691.

Pure functions over values. A file is kept only when its name parses as a wheel or sdist, the
parsed name canonicalises to the requested project, and the policy allows the parsed version.
Pages are served as API version 1.4: PEP 700 (`versions`, `size`, `upload-time`), PEP 658/714
(core metadata, with its hash where known), PEP 592 (yanked, with the reason) and PEP 792 (a
project with nothing allowed is `quarantined`, with the refusal as its reason).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.4"
MAX_FILENAME = 255
"""Bytes; no index serves a longer file name, and a longer one is refused before it is parsed."""
_SEGMENT = re.compile(r"^[A-Za-z0-9]+$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class FileLink:
    """One file of a project page: where devpi keeps it, and what the upstream says of it."""

    filename: str
    relpath: str
    """devpi's path under `+f/` (`ab/cdef0123456789/numpy-2.0.1-….whl`)."""
    sha256: str | None
    requires_python: str | None
    yanked: bool | str
    core_metadata: bool | str = False
    """PEP 658, as Airlock serves it: False (none), True (served, hash unknown) or its sha256."""
    size: int | None = None
    upload_time: str | None = None
    upstream_url: str | None = None
    """Where the upstream serves the file (from its own page): Airlock reads metadata from it by
    byte ranges, as uv does; never given to clients."""


@dataclass(frozen=True)
class ProjectPage:
    """A project's files as devpi lists them, with the upstream's facts merged in, before policy."""

    name: str
    files: tuple[FileLink, ...]
    relpaths: frozenset[str] = frozenset()
    withheld: tuple[tuple[str, str], ...] = ()
    """(file name, why) for files the upstream described in a way Airlock will not pass on."""
    status: str = "active"
    """The upstream's PEP 792 status; `quarantined` there means nothing of it is served."""
    status_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.relpaths:
            object.__setattr__(self, "relpaths", frozenset(f.relpath for f in self.files))

    def link(self, relpath: str) -> FileLink | None:
        return self._by_relpath.get(relpath)

    @property
    def _by_relpath(self) -> dict[str, FileLink]:
        found = self.__dict__.get("_links")
        if found is None:
            found = {f.relpath: f for f in self.files}
            object.__setattr__(self, "_links", found)
        return found


@dataclass(frozen=True)
class ProjectStatus:
    """PEP 792 status of an Airlock page: quarantined when the environment allows nothing of it."""

    status: str = "active"
    reason: str | None = None


@lru_cache(maxsize=16_384)
def parse_filename(filename: str) -> tuple[str, str] | None:
    """(canonical project name, version) of a wheel or sdist file; None if it is neither."""
    if len(filename.encode()) > MAX_FILENAME:
        return None
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(name), str(version)


def safe_relpath(relpath: str) -> bool:
    """devpi's file paths are hex directories plus a file name: anything else is refused."""
    *directories, filename = relpath.split("/")
    return (
        bool(directories)
        and all(_SEGMENT.match(d) for d in directories)
        and bool(_FILENAME.match(filename))
        and len(filename.encode()) <= MAX_FILENAME + len(".metadata")
    )


def parse_devpi_page(body: bytes) -> ProjectPage:
    """Parse devpi's PEP 691 answer; links that do not point into devpi's `+f/`, or whose hash is
    not a sha256 hex digest, are dropped."""
    data = json.loads(body)
    files = []
    for item in data.get("files", ()):
        url = item.get("url", "")
        _, marker, relpath = url.partition("+f/")
        filename = item.get("filename", "")
        if not marker or not safe_relpath(relpath) or relpath.rsplit("/", 1)[-1] != filename:
            continue
        sha256 = (item.get("hashes") or {}).get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
            continue
        files.append(
            FileLink(
                filename=filename,
                relpath=relpath,
                sha256=sha256,
                requires_python=item.get("requires-python"),
                yanked=item.get("yanked") or False,
            )
        )
    return ProjectPage(name=canonicalize_name(data.get("name", "")), files=tuple(files))


def allowed_files(page: ProjectPage, project: str, allows: Callable[[str], bool]) -> list[FileLink]:
    """The files of `page` whose parsed name is `project` and whose version `allows` admits."""
    kept = []
    for link in page.files:
        parsed = parse_filename(link.filename)
        if parsed is not None and parsed[0] == project and allows(parsed[1]):
            kept.append(link)
    return kept


def file_url(project: str, link: FileLink) -> str:
    """Relative to `/pypi/{env}/simple/{project}/`: `../../files/{project}/{relpath}`."""
    return f"../../files/{project}/{link.relpath}"


def versions_of(files: list[FileLink]) -> list[str]:
    """PEP 700 `versions`: the versions the listed files carry, oldest first."""
    found = {parsed[1] for parsed in map(parse_filename, (f.filename for f in files)) if parsed is not None}
    return sorted(found, key=Version)


def render_json(project: str, files: list[FileLink], status: ProjectStatus = ProjectStatus()) -> bytes:
    entries = []
    for link in files:
        entry: dict[str, Any] = {
            "filename": link.filename,
            "url": file_url(project, link),
            "hashes": {"sha256": link.sha256} if link.sha256 else {},
        }
        if link.requires_python is not None:
            entry["requires-python"] = link.requires_python
        if link.yanked:
            entry["yanked"] = link.yanked
        if link.core_metadata:
            value = {"sha256": link.core_metadata} if isinstance(link.core_metadata, str) else True
            entry["core-metadata"] = entry["dist-info-metadata"] = value
        if link.size is not None:
            entry["size"] = link.size
        if link.upload_time is not None:
            entry["upload-time"] = link.upload_time
        entries.append(entry)
    document: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "files": entries,
        "versions": versions_of(files),
    }
    if status.status != "active":
        document["project-status"] = {"status": status.status, **({"reason": status.reason} if status.reason else {})}
    return json.dumps(document, separators=(",", ":")).encode()


def render_html(project: str, files: list[FileLink], status: ProjectStatus = ProjectStatus()) -> bytes:
    name = html.escape(project)
    head = [f'<meta name="pypi:repository-version" content="{API_VERSION}">']
    if status.status != "active":
        head.append(f'<meta name="pypi:project-status" content="{html.escape(status.status)}">')
        if status.reason:
            head.append(f'<meta name="pypi:project-status-reason" content="{html.escape(status.reason)}">')
    lines = [
        f"<!DOCTYPE html>\n<html><head>{''.join(head)}<title>Links for {name}</title></head><body><h1>Links for {name}</h1>"
    ]
    for link in files:
        fragment = f"#sha256={link.sha256}" if link.sha256 else ""
        attributes = [f'href="{html.escape(file_url(project, link) + fragment)}"']
        if link.requires_python is not None:
            attributes.append(f'data-requires-python="{html.escape(link.requires_python)}"')
        if link.yanked:
            reason = "" if link.yanked is True else str(link.yanked)
            attributes.append(f'data-yanked="{html.escape(reason)}"')
        if link.core_metadata:
            value = f"sha256={link.core_metadata}" if isinstance(link.core_metadata, str) else "true"
            attributes.append(
                f'data-dist-info-metadata="{html.escape(value)}" data-core-metadata="{html.escape(value)}"'
            )
        lines.append(f"<a {' '.join(attributes)}>{html.escape(link.filename)}</a><br>")
    lines.append("</body></html>\n")
    return "\n".join(lines).encode()


def render_index(projects: list[str], as_json: bool) -> bytes:
    if as_json:
        return json.dumps(
            {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}, separators=(",", ":")
        ).encode()
    links = "\n".join(f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br>' for p in projects)
    return (
        f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="{API_VERSION}">'
        f"<title>Simple index</title></head><body>\n{links}\n</body></html>\n"
    ).encode()


@lru_cache(maxsize=1024)
def negotiate(accept: str) -> str | None:
    """PEP 691 content negotiation: the best of JSON v1, HTML v1, text/html; None if none fits."""
    if not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, str] | None = None
    offered = {JSON_V1: 3, HTML_V1: 2, TEXT_HTML: 1}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media in ("*/*", "text/*"):
            candidates = {TEXT_HTML: 1}  # browsers and curl get HTML, as from pypi.org
        elif media == "application/*":
            candidates = {JSON_V1: 3}
        else:
            candidates = {media: offered[media]} if media in offered else {}
        for candidate, preference in candidates.items():
            if quality > 0 and (best is None or (quality, preference) > best[:2]):
                best = (quality, preference, candidate)
    return best[2] if best else None
