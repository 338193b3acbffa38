"""Downloads resume from a partial file with an HTTP Range request and are verified before use."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mirror.conda.download import VerifiedCache, Wanted

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture
def range_server():
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested = self.headers.get("Range")
            seen.append(requested)
            start = int(requested.split("=")[1].rstrip("-")) if requested else 0
            body = PAYLOAD[start:]
            self.send_response(206 if requested else 200)
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def wanted(url: str) -> Wanted:
    return Wanted(
        "conda-forge",
        "linux-64",
        "big-1.0-0.tar.bz2",
        f"{url}/big-1.0-0.tar.bz2",
        hashlib.sha256(PAYLOAD).hexdigest(),
        len(PAYLOAD),
    )


def test_a_partial_download_is_resumed_with_range(range_server, tmp_path):
    url, seen = range_server
    cache = VerifiedCache(tmp_path)
    item = wanted(url)
    part = item.path(tmp_path).with_name(item.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:40_000])
    with httpx.Client() as client:
        assert cache.ensure(client, [item]) == []
    assert seen == ["bytes=40000-"]
    assert item.path(tmp_path).read_bytes() == PAYLOAD and not part.exists()
    with httpx.Client() as client:  # verified once: reused, not fetched again
        assert VerifiedCache(tmp_path).ensure(client, [item]) == []
    assert seen == ["bytes=40000-"]


def test_a_corrupt_partial_file_is_discarded_and_named(range_server, tmp_path):
    url, seen = range_server
    item = wanted(url)
    part = item.path(tmp_path).with_name(item.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(40_000))
    with httpx.Client() as client:
        problems = VerifiedCache(tmp_path).ensure(client, [item])
    spliced = hashlib.sha256(bytes(40_000) + PAYLOAD[40_000:]).hexdigest()
    assert problems == [
        f"conda-forge/linux-64/big-1.0-0.tar.bz2: sha256 {spliced} != {item.sha256} in upstream repodata (tampered or corrupt)"
    ]
    assert not part.exists() and not item.path(tmp_path).exists()
    with httpx.Client() as client:
        assert VerifiedCache(tmp_path).ensure(client, [item]) == []
    assert seen == ["bytes=40000-", None]
