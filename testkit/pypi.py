"""Build what a PyPI upstream serves — real wheels, sdists, PEP 658 metadata, PEP 503/691 pages.

Used by the tests and by `bench/pypi.py`. Everything is written to a folder laid out as
`simple/{project}/index.html` (PEP 503), `simple/{project}/index.json` (PEP 691 with PEP 700 `size`,
`upload-time` and `versions`) and `files/{filename}`; `testkit.pypi_index` serves it as an
index does (JSON or HTML by Accept, byte ranges), a static server as a plain mirror does.

Each release chooses its quirks: whether the upstream serves PEP 658 metadata for it (the public
PyPI does; the one reachable here, Artifactory remotes and static mirrors often do not), a yank
reason, a hash on the page that does not match the file or its metadata.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version


def parse_filename(filename: str):
    """(name, version) of a wheel or sdist file name; None for anything else."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[:2]
        return parse_sdist_filename(filename)
    except ValueError:
        return None


@dataclass(frozen=True)
class Release:
    """One file of a project as upstream lists it."""

    project: str
    """Project name as the upstream page is titled (normalised for the URL)."""
    version: str
    kind: str = "wheel"
    """`wheel` or `sdist`."""
    dist_name: str | None = None
    """Name as spelled in the filename (default: the project, underscored for wheels)."""
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    yanked: str | None = None
    """None: not yanked; "" yanked without reason; text: the reason."""
    payload: bytes = b""
    """Extra bytes inside the package, to make files of a chosen size or content."""
    listed_under: str | None = None
    """Put the file on another project's page (to test mismatched names)."""
    licence: str | None = "MIT"
    metadata: bool = True
    """Whether the upstream serves `FILE.whl.metadata` (PEP 658) and advertises it, with its hash."""
    upload_time: str | None = "2026-01-15T10:00:00.000000Z"
    """PEP 700 upload time on the JSON page; None: the page gives none."""
    lie: str | None = None
    """`hash`: the page's sha256 is not the file's; `metadata-hash`: the metadata's hash on the page is
    not that of the metadata served (a broken or hostile upstream)."""

    @property
    def filename(self) -> str:
        name = self.dist_name or self.project
        if self.kind == "wheel":
            return f"{name.replace('-', '_')}-{self.version}-py3-none-any.whl"
        return f"{name}-{self.version}.tar.gz"

    @property
    def page(self) -> str:
        return canonicalize_name(self.listed_under or self.project)


def _metadata(release: Release) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {release.dist_name or release.project}", f"Version: {release.version}"]
    if release.requires_python:
        lines.append(f"Requires-Python: {release.requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in release.requires]
    lines.append(f"Summary: test package {release.project}")
    if release.licence:
        lines.append(f"License: {release.licence}")
    return "\n".join(lines) + "\n\n"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(release: Release) -> bytes:
    module = canonicalize_name(release.dist_name or release.project).replace("-", "_")
    dist_info = f"{(release.dist_name or release.project).replace('-', '_')}-{release.version}.dist-info"
    files = {
        f"{module}/__init__.py": f'__version__ = "{release.version}"\n'.encode(),
        f"{dist_info}/METADATA": _metadata(release).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: airlock-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if release.payload:
        files[f"{module}/payload.bin"] = release.payload
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist_info}/RECORD", record)
    return buffer.getvalue()


def build_sdist(release: Release) -> bytes:
    name = release.dist_name or release.project
    module = canonicalize_name(name).replace("-", "_")
    root = f"{name}-{release.version}"
    setup = (
        "from setuptools import setup\n"
        f"setup(name={name!r}, version={release.version!r}, packages=[{module!r}],"
        f" install_requires={list(release.requires)!r})\n"
    )
    files = {
        f"{root}/PKG-INFO": _metadata(release).encode(),
        f"{root}/setup.py": setup.encode(),
        f"{root}/{module}/__init__.py": f'__version__ = "{release.version}"\n'.encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Upstream:
    """A folder laid out as a PEP 503 index; `url` is set once a server publishes it."""

    root: Path
    releases: list[Release] = field(default_factory=list)
    url: str = ""
    html_only: set[str] = field(default_factory=set)
    """Projects whose page is PEP 503 HTML only (no JSON: no size, no upload time), as a static mirror's."""
    raw_pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Project -> (content type, body) served as written: malformed or hostile pages."""
    index_delay: float = 0.0
    """Seconds the project list (`/simple/`) takes: PyPI's is hundreds of thousands of names."""
    page_delays: dict[str, float] = field(default_factory=dict)
    """Seconds a project's page takes (an upstream that is slow or hangs)."""

    def add(self, *releases: Release) -> None:
        self.releases.extend(releases)

    def publish(self) -> None:
        """Write files, `.metadata` companions and every page (idempotent)."""
        files = self.root / "files"
        files.mkdir(parents=True, exist_ok=True)
        pages: dict[str, list[tuple[str, dict]]] = {}
        for release in self.releases:
            data = build_wheel(release) if release.kind == "wheel" else build_sdist(release)
            (files / release.filename).write_bytes(data)
            digest = hashlib.sha256(data if release.lie != "hash" else data + b"lie").hexdigest()
            attributes = [f'href="../../files/{release.filename}#sha256={digest}"']
            entry: dict = {
                "filename": release.filename,
                "url": f"../../files/{release.filename}",
                "hashes": {"sha256": digest},
                "size": len(data),
            }
            if release.upload_time is not None:
                entry["upload-time"] = release.upload_time
            if release.kind == "wheel" and release.metadata:
                metadata = _metadata(release).encode()
                (files / f"{release.filename}.metadata").write_bytes(metadata)
                advertised = hashlib.sha256(
                    metadata if release.lie != "metadata-hash" else metadata + b"lie"
                ).hexdigest()
                attributes.append(
                    f'data-dist-info-metadata="sha256={advertised}" data-core-metadata="sha256={advertised}"'
                )
                entry["core-metadata"] = entry["dist-info-metadata"] = {"sha256": advertised}
            if release.requires_python:
                attributes.append(f'data-requires-python="{html.escape(release.requires_python)}"')
                entry["requires-python"] = release.requires_python
            if release.yanked is not None:
                attributes.append(f'data-yanked="{html.escape(release.yanked)}"')
                entry["yanked"] = release.yanked or True
            pages.setdefault(release.page, []).append((f"<a {' '.join(attributes)}>{release.filename}</a><br>", entry))
        simple = self.root / "simple"
        for project, links in pages.items():
            (simple / project).mkdir(parents=True, exist_ok=True)
            (simple / project / "index.html").write_text(
                f"<!DOCTYPE html><html><body><h1>Links for {project}</h1>\n"
                + "\n".join(link for link, _ in links)
                + "\n</body></html>\n"
            )
            if project in self.html_only:
                (simple / project / "index.json").unlink(missing_ok=True)
                continue
            versions = sorted(
                {str(parse_filename(e["filename"])[1]) for _, e in links if parse_filename(e["filename"])}, key=Version
            )
            (simple / project / "index.json").write_text(
                json.dumps(
                    {
                        "meta": {"api-version": "1.1"},
                        "name": project,
                        "files": [e for _, e in links],
                        "versions": versions,
                    }
                )
            )
        for project, (content_type, body) in self.raw_pages.items():
            (simple / project).mkdir(parents=True, exist_ok=True)
            (simple / project / "raw").write_bytes(content_type.encode() + b"\n" + body)
        index = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(set(pages) | set(self.raw_pages)))
        (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{index}</body></html>\n")
        (self.root / "_server.json").write_text(
            json.dumps({"index_delay": self.index_delay, "page_delays": self.page_delays})
        )

    def file_bytes(self, filename: str) -> bytes:
        return (self.root / "files" / filename).read_bytes()
