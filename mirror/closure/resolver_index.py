"""The index a closure check resolves against: the upstream as an environment's curated index sees it.

A loopback HTTP server (PEP 691 JSON) in front of the upstream. For a project the environment
allows, its page lists the allowed files only — the same `Allowlist.decide` the mirror applies; for
any other project, every file, and the project is noted: if the resolver's answer contains it, the
environment lacks it. Core metadata goes through this server too (the upstream's PEP 658 file,
checked against its hash, or the wheel's `METADATA` read by byte ranges), so the closure knows what
each package requires, and it is kept on disk: a second run reads no wheel again.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from mirror.policy.targets import Target
from mirror.pypi.metadata import MetadataRefused, read_wheel_metadata
from mirror.pypi.remote_wheel import RangeFile, RangesUnsupported
from mirror.pypi.simple import parse_filename
from mirror.pypi.upstream_page import (
    ACCEPT,
    UnreadablePage,
    UpstreamFile,
    UpstreamPage,
    page_from_json,
    page_to_json,
    parse_upstream_page,
)

JSON_V1 = "application/vnd.pypi.simple.v1+json"
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _extras_in(marker: str) -> list[str]:
    return _EXTRA.findall(marker)


@dataclass
class ResolverIndex:
    """Serve `upstream` filtered by `allows(name, version)` for the names `listed(name)` says the
    environment allows. `cache`: a folder for pages (reused `page_ttl` seconds) and metadata."""

    upstream: str
    cache: Path
    listed: Callable[[str], bool]
    allows: Callable[[str, str], bool]
    page_ttl: float = 1800.0
    timeout: float = 30.0
    outside: set[str] = field(default_factory=set)
    """Projects served unfiltered (the environment does not allow them)."""
    failures: list[str] = field(default_factory=list)
    """Upstream errors met: the closure could not be decided."""
    _files: dict[str, UpstreamFile] = field(default_factory=dict)
    _metadata: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ResolverIndex:
        self._client = httpx.Client(
            timeout=self.timeout, follow_redirects=True, limits=httpx.Limits(max_connections=16)
        )
        index = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, content_type, body, headers = index.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="closure-index", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def requirement_of(self, parent: str, version: str, child: str, target: Target) -> str | None:
        """The requirement `parent version` states for `child` on `target` (from the metadata it
        served): the line whose marker holds there, else one that holds for an extra, else any."""
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name

        body = self._metadata.get((parent, version))
        if body is None:
            return None
        found: list[tuple[int, str]] = []
        environment = target.marker_environment()
        for line in body.decode("utf-8", "replace").splitlines():
            if not line.lower().startswith("requires-dist:"):
                continue
            try:
                requirement = Requirement(line.split(":", 1)[1].strip())
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) != child:
                continue
            requirement.name = child
            marker = requirement.marker
            if marker is None or marker.evaluate({**environment, "extra": ""}):
                rank = 0
            elif "extra" in str(marker) and any(
                marker.evaluate({**environment, "extra": e}) for e in _extras_in(str(marker))
            ):
                rank = 1
            else:
                rank = 2
            found.append((rank, str(requirement)))
        return min(found)[1] if found else None

    def answer(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        try:
            if len(parts) == 2 and parts[0] == "simple":
                return self._page(parts[1])
            if len(parts) == 3 and parts[0] == "files":
                return self._file(parts[1], parts[2])
        except httpx.HTTPError as exc:
            self.failures.append(f"the upstream index is unreachable ({exc.__class__.__name__})")
            return 503, "text/plain", b"upstream unreachable\n", {}
        return 404, "text/plain", b"no such route\n", {}

    def _page(self, project: str) -> tuple[int, str, bytes, dict[str, str]]:
        page = self._upstream_page(project)
        if page is None:
            return 404, "text/plain", b"no such project\n", {}
        listed = self.listed(project)
        if not listed:
            with self._lock:
                self.outside.add(project)
        entries = []
        for facts in page.files.values():
            parsed = parse_filename(facts.filename)
            if parsed is None or parsed[0] != project or facts.sha256 is None:
                continue
            if listed and not self.allows(project, parsed[1]):
                continue
            with self._lock:
                self._files[facts.sha256] = facts
            entry = {
                "filename": facts.filename,
                "url": f"../../files/{facts.sha256}/{facts.filename}",
                "hashes": {"sha256": facts.sha256},
            }
            if facts.requires_python:
                entry["requires-python"] = facts.requires_python
            if facts.yanked:
                entry["yanked"] = facts.yanked
            if facts.filename.endswith(".whl"):
                entry["core-metadata"] = True
            entries.append(entry)
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": entries}).encode()
        return 200, JSON_V1, body, {}

    def _file(self, sha256: str, filename: str) -> tuple[int, str, bytes, dict[str, str]]:
        facts = self._files.get(sha256)
        wheel_name = filename.removesuffix(".metadata")
        if facts is None or facts.filename != wheel_name:
            return 404, "text/plain", b"not on a page served\n", {}
        if not filename.endswith(".metadata"):
            return 302, "text/plain", b"", {"Location": facts.url}  # builds of sdists fetch them upstream
        try:
            body = self._wheel_metadata(facts)
        except MetadataRefused as exc:
            return 502, "text/plain", exc.reason.encode(), {}
        parsed = parse_filename(facts.filename)
        if parsed is not None:
            with self._lock:
                self._metadata[parsed] = body
        return 200, "application/octet-stream", body, {}

    def _wheel_metadata(self, facts: UpstreamFile) -> bytes:
        stored = self.cache / "metadata" / f"{facts.sha256}.metadata"
        if stored.is_file():
            return stored.read_bytes()
        if isinstance(facts.metadata, str) or facts.metadata is True:
            response = self._client.get(f"{facts.url}.metadata")
            if response.status_code == 200 and (
                facts.metadata is True or hashlib.sha256(response.content).hexdigest() == facts.metadata
            ):
                body = response.content
            else:
                body = self._read_wheel(facts)
        else:
            body = self._read_wheel(facts)
        stored.parent.mkdir(parents=True, exist_ok=True)
        temporary = stored.with_suffix(f".{threading.get_ident()}.tmp")
        temporary.write_bytes(body)
        temporary.replace(stored)
        return body

    def _read_wheel(self, facts: UpstreamFile) -> bytes:
        if facts.size:
            try:
                return read_wheel_metadata(RangeFile(self._client, facts.url, facts.size), facts.filename)
            except (RangesUnsupported, MetadataRefused):
                pass
        response = self._client.get(facts.url)
        if response.status_code != 200 or hashlib.sha256(response.content).hexdigest() != facts.sha256:
            raise MetadataRefused(502, f"{facts.filename}: the upstream did not serve the file its page lists")
        import io

        return read_wheel_metadata(io.BytesIO(response.content), facts.filename)  # type: ignore[arg-type]

    def _upstream_page(self, project: str) -> UpstreamPage | None:
        stored = self.cache / "pages" / f"{project}.json"
        if stored.is_file() and time.time() - stored.stat().st_mtime < self.page_ttl:
            return page_from_json(json.loads(stored.read_bytes()))
        url = f"{self.upstream}{project}/"
        response = self._client.get(url, headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self.failures.append(f"the upstream index answered HTTP {response.status_code} for {project}")
            raise httpx.HTTPError(f"HTTP {response.status_code}")
        try:
            page = parse_upstream_page(response.content, response.headers.get("content-type", ""), url)
        except UnreadablePage as exc:
            self.failures.append(f"the upstream's page for {project} cannot be read ({exc})")
            raise httpx.HTTPError(str(exc)) from None
        stored.parent.mkdir(parents=True, exist_ok=True)
        temporary = stored.with_suffix(f".{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(page_to_json(page)))
        temporary.replace(stored)
        return page
