"""Simple-repository pages: read devpi's PEP 691 JSON, keep the allowed files, render PEP 503/691.

Pure functions over values. A file is kept only when its name parses as a wheel or sdist, the
parsed name canonicalises to the requested project, and the policy allows the parsed version.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_SEGMENT = re.compile(r"^[A-Za-z0-9]+$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


@dataclass(frozen=True, slots=True)
class FileLink:
    """One file of a project page, as devpi lists it."""

    filename: str
    relpath: str
    """devpi's path under `+f/` (`ab/cdef0123456789/numpy-2.0.1-….whl`)."""
    hashes: tuple[tuple[str, str], ...]
    requires_python: str | None
    yanked: bool | str
    core_metadata: bool | dict[str, str]


@dataclass(frozen=True)
class ProjectPage:
    """A project's files as devpi lists them, before any policy is applied."""

    name: str
    files: tuple[FileLink, ...]
    relpaths: frozenset[str]


@lru_cache(maxsize=262_144)
def parse_filename(filename: str) -> tuple[str, str] | None:
    """(canonical project name, version) of a wheel or sdist file; None if it is neither."""
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
    return bool(directories) and all(_SEGMENT.match(d) for d in directories) and bool(_FILENAME.match(filename))


def parse_devpi_page(body: bytes) -> ProjectPage:
    """Parse devpi's PEP 691 answer; links that do not point into devpi's `+f/` are dropped."""
    data = json.loads(body)
    files = []
    for item in data.get("files", ()):
        url = item.get("url", "")
        _, marker, relpath = url.partition("+f/")
        filename = item.get("filename", "")
        if not marker or not safe_relpath(relpath) or relpath.rsplit("/", 1)[-1] != filename:
            continue
        files.append(FileLink(
            filename=filename,
            relpath=relpath,
            hashes=tuple(sorted(item.get("hashes", {}).items())),
            requires_python=item.get("requires-python"),
            yanked=item.get("yanked", False),
            core_metadata=item.get("core-metadata", item.get("dist-info-metadata", False)),
        ))
    return ProjectPage(name=canonicalize_name(data.get("name", "")), files=tuple(files), relpaths=frozenset(f.relpath for f in files))


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


def render_json(project: str, files: list[FileLink]) -> bytes:
    entries = []
    for link in files:
        entry: dict[str, Any] = {"filename": link.filename, "url": file_url(project, link), "hashes": dict(link.hashes)}
        if link.requires_python is not None:
            entry["requires-python"] = link.requires_python
        if link.yanked:
            entry["yanked"] = link.yanked
        if link.core_metadata:
            entry["core-metadata"] = link.core_metadata
            entry["dist-info-metadata"] = link.core_metadata
        entries.append(entry)
    return json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": entries}, separators=(",", ":")).encode()


def render_html(project: str, files: list[FileLink]) -> bytes:
    lines = [f"<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Links for {project}</title></head>"
             f"<body><h1>Links for {project}</h1>"]
    for link in files:
        fragment = "".join(f"#{name}={value}" for name, value in link.hashes[:1])
        attributes = [f'href="{html.escape(file_url(project, link))}{fragment}"']
        if link.requires_python is not None:
            attributes.append(f'data-requires-python="{html.escape(link.requires_python)}"')
        if link.yanked:
            reason = "" if link.yanked is True else str(link.yanked)
            attributes.append(f'data-yanked="{html.escape(reason)}"')
        if link.core_metadata:
            value = _metadata_attribute(link.core_metadata)
            attributes.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
        lines.append(f"<a {' '.join(attributes)}>{html.escape(link.filename)}</a><br>")
    lines.append("</body></html>\n")
    return "\n".join(lines).encode()


def render_index(projects: list[str], as_json: bool) -> bytes:
    if as_json:
        return json.dumps({"meta": {"api-version": "1.0"}, "projects": [{"name": p} for p in projects]}, separators=(",", ":")).encode()
    links = "\n".join(f'<a href="{p}/">{p}</a><br>' for p in projects)
    return f"<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Simple index</title></head><body>\n{links}\n</body></html>\n".encode()


def _metadata_attribute(value: bool | dict[str, str]) -> str:
    if isinstance(value, dict) and value:
        name, digest = sorted(value.items())[0]
        return html.escape(f"{name}={digest}")
    return "true"


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
