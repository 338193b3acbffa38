"""Debian's docker-registry as a pull-through cache: one child per upstream, bound to loopback.

The cache knows nothing of the allowlist and keeps serving what it has; Airlock's filter in
`mirror/containers/` is the only way to it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import httpx

from mirror.children.supervisor import ChildError, ChildProcess, free_port

log = logging.getLogger(__name__)


class RegistryCache:
    def __init__(self, data_dir: Path, upstream_name: str, upstream_url: str) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ChildError(
                "docker-registry is not installed (Debian package docker-registry; scripts/run installs it)"
            )
        self.name = upstream_name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = data_dir / "registry" / upstream_name
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}, relativeurls: true}}\n"
            f"proxy: {{remoteurl: {upstream_url}}}\n"
        )
        self.child = ChildProcess(
            name=f"registry-{upstream_name}",
            argv=[binary, "serve", str(config)],
            log_path=data_dir / "logs" / f"registry-{upstream_name}.log",
            ready=lambda: httpx.get(f"{self.url}/v2/", timeout=2.0).status_code == 200,
            ready_timeout=60.0,
        )

    def start(self) -> None:
        self.child.start()

    def stop(self) -> None:
        self.child.stop()

    def healthy(self) -> bool:
        return self.child.healthy()


class RegistryCaches:
    """The caches of every upstream in containers.yaml. One that cannot start (docker-registry
    exits when its upstream does not answer) is retried in the background with backoff, so an
    upstream coming back is enough: no restart of Airlock. Until then its images get a 503."""

    def __init__(self, data_dir: Path, upstreams: dict[str, str], retry_seconds: float) -> None:
        self.data_dir = data_dir
        self.retry_seconds = retry_seconds
        self.urls: dict[str, str] = {}
        """Upstream name -> URL of its running cache; the registry routes read this live."""
        self.caches: list[RegistryCache] = []
        self._pending = dict(upstreams)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    def start(self) -> None:
        self._try_pending()
        if self._pending:
            self._thread = threading.Thread(target=self._retry, name="registry-retry", daemon=True)
            self._thread.start()

    def _try_pending(self) -> None:
        for name, url in list(self._pending.items()):
            try:
                cache = RegistryCache(self.data_dir, name, url)
                cache.start()
            except ChildError as exc:  # fail closed: that upstream's images are refused, the rest runs
                log.error("registry cache for %s not started: %s; retrying in the background", name, exc)
                continue
            self.caches.append(cache)
            self.urls[name] = cache.url
            del self._pending[name]
            log.info("registry cache for %s is running", name)

    def _retry(self) -> None:
        delay = self.retry_seconds
        while self._pending and not self._stop.wait(delay):
            self._try_pending()
            delay = min(delay * 2, 300.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(70)
        for cache in list(self.caches):
            cache.stop()
