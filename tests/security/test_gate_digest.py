"""The gate names (and discards) the image it judged, even when the tag moves while it works: the
audit record's digest is the manifest the engine pulled, not what the tag points to afterwards."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.gate_world import gate, image, last_audit

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
REPOSITORY = "app/moving"


class TagMovingProxy:
    """A registry front that, once the engine has pulled `app/moving:1`, points that tag at the
    manifest of `app/moving:b` in the real registry behind it (a push by someone else)."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url
        self.moved = threading.Event()
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                # A list, not a dict: the engine sends several Accept lines, and each counts.
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length")]
                answer = httpx.request(
                    self.command, proxy.registry_url + self.path, content=body, headers=headers, timeout=60
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)
                self.wfile.flush()
                if self.path == f"/v2/{REPOSITORY}/manifests/1" and not proxy.moved.is_set():
                    proxy.move_tag()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def move_tag(self) -> None:
        other = httpx.get(f"{self.registry_url}/v2/{REPOSITORY}/manifests/b", headers={"Accept": ACCEPT})
        moved = httpx.put(
            f"{self.registry_url}/v2/{REPOSITORY}/manifests/1",
            content=other.content,
            headers={"Content-Type": other.headers["content-type"]},
        )
        assert moved.status_code == 201, moved.text
        self.moved.set()

    def stop(self) -> None:
        self.server.shutdown()


def _digest(registry_url: str, reference: str) -> str | None:
    answer = httpx.head(f"{registry_url}/v2/{REPOSITORY}/manifests/{reference}", headers={"Accept": ACCEPT})
    return answer.headers.get("docker-content-digest") if answer.status_code == 200 else None


def test_the_record_and_the_discard_name_the_pulled_manifest_when_the_tag_moves(gate_world):
    registry, engine = gate_world["registry"], gate_world["engine"]
    judged = image(gate_world, f"{registry.host}/{REPOSITORY}:1", packages=[("vulnlib", "1.0")])
    other = image(gate_world, f"{registry.host}/{REPOSITORY}:b", packages=[("goodlib", "2.1.0")])
    for reference in (judged, other):
        engine.docker("push", reference)
    pulled, moved_to = _digest(registry.url, "1"), _digest(registry.url, "b")
    proxy = TagMovingProxy(registry.url)
    try:
        result = gate(gate_world, f"{proxy.host}/{REPOSITORY}:1", "--env", "prod")
    finally:
        proxy.stop()
    assert proxy.moved.is_set(), "the engine never pulled through the proxy"
    assert result.returncode == 1, result.stderr  # vulnlib 1.0 fails prod
    record = last_audit(gate_world)["details"]
    assert record["digest"] == pulled != moved_to
    assert _digest(registry.url, pulled) is None  # the judged manifest is what was deleted
    assert _digest(registry.url, moved_to) is not None  # the other image is untouched
