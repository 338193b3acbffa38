"""A PyPI-like index server over a folder `Upstream.publish()` wrote, quirks included.

Like the public PyPI: PEP 691 content negotiation (JSON or HTML by `Accept`), byte ranges on files
(a CDN's `Accept-Ranges: bytes`, 206), keep-alive. Like the indexes users really have: projects
whose pages are HTML only, raw pages (malformed, hostile) served as written, and a project list
that is slow to come (`_server.json`: `{"index_delay": SECONDS, "page_delays": {PROJECT: SECONDS}}`,
re-read on every request).

    python -m testkit.pypi_index PORT DIRECTORY
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path

from testkit.static_http import KeepAliveHandler

JSON_V1 = "application/vnd.pypi.simple.v1+json"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class IndexHandler(KeepAliveHandler):
    root: Path

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/simple/":
            time.sleep(float(self._config().get("index_delay", 0)))
        if path.startswith("/simple/") and path.count("/") == 3:
            time.sleep(float(self._config().get("page_delays", {}).get(path.split("/")[2], 0)))
            return self._project_page(path.split("/")[2], body)
        if path.startswith("/files/") and "range" in {k.lower() for k in self.headers}:
            return self._range(self.root / path.lstrip("/"), body)
        return super().do_GET() if body else super().do_HEAD()

    def _project_page(self, project: str, body: bool) -> None:
        folder = self.root / "simple" / project
        raw = folder / "raw"
        if raw.exists():
            content_type, _, data = raw.read_bytes().partition(b"\n")
            return self._send(200, content_type.decode(), data, body)
        wants_json = JSON_V1 in (self.headers.get("Accept") or "") and (folder / "index.json").exists()
        page = folder / ("index.json" if wants_json else "index.html")
        if not page.exists():
            return self._send(404, "text/plain", b"no such project\n", body)
        return self._send(200, JSON_V1 if wants_json else "text/html", page.read_bytes(), body)

    def _range(self, path: Path, body: bool) -> None:
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if not path.is_file() or match is None:
            return super().do_GET() if body else super().do_HEAD()
        size = path.stat().st_size
        first, last = match.groups()
        start, end = (size - int(last), size - 1) if not first else (int(first), min(int(last or size - 1), size - 1))
        if start >= size or start > end:
            return self._send(416, "text/plain", b"", body, {"Content-Range": f"bytes */{size}"})
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start + 1)
        self._send(206, "application/octet-stream", data, body, {"Content-Range": f"bytes {start}-{end}/{size}"})

    def _send(
        self, status: int, content_type: str, data: bytes, body: bool, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(HTTPStatus(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def end_headers(self) -> None:
        if self.path.startswith("/files/") and "Accept-Ranges" not in str(self._headers_buffer):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def _config(self) -> dict:
        try:
            return json.loads((self.root / "_server.json").read_text())
        except (OSError, ValueError):
            return {}


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    handler = type("Handler", (IndexHandler,), {"root": directory})
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=os.fspath(directory)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
