"""Debian's docker-registry as a pull-through cache: one child per upstream, bound to loopback.

The cache knows nothing of the allowlist and keeps serving what it has; Airlock's filter in
`mirror/containers/` is the only way to it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mirror.children.supervisor import ChildError, ChildProcess, free_port

log = logging.getLogger(__name__)


class RegistryCache:
    def __init__(self, data_dir: Path, upstream_name: str, upstream_url: str, quiet: bool = False) -> None:
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
            quiet=quiet,
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
    upstream coming back is enough: no restart of Airlock. Until then its images get a 503.

    Why a cache did not start is read from its own log and said once, as a sentence naming the
    upstream and what still works; a retry that fails the same way is not logged again."""

    def __init__(self, data_dir: Path, upstreams: dict[str, str], retry_seconds: float) -> None:
        self.data_dir = data_dir
        self.retry_seconds = retry_seconds
        self.upstreams = dict(upstreams)
        self.urls: dict[str, str] = {}
        """Upstream name -> URL of its running cache; the registry routes read this live."""
        self.caches: list[RegistryCache] = []
        self.causes: dict[str, str] = {}
        """Upstream name -> why its cache is not running (what `status` and `/readyz` show)."""
        self._pending = dict(upstreams)
        self._delay = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    def state(self, name: str) -> str:
        return f"not running: {self.causes.get(name, 'starting')}; retrying every {self._delay:.0f} s"

    def start(self) -> None:
        self._try_pending()
        if self._pending:
            self._thread = threading.Thread(target=self._retry, name="registry-retry", daemon=True)
            self._thread.start()

    def _try_pending(self) -> None:
        for name, url in list(self._pending.items()):
            log_path = self.data_dir / "logs" / f"registry-{name}.log"
            written = log_path.stat().st_size if log_path.exists() else 0
            try:
                cache = RegistryCache(self.data_dir, name, url, quiet=name in self.causes)
                cache.start()
            except ChildError as exc:  # fail closed: that upstream's images are refused, the rest runs
                cause = start_failure(log_path, written, url) or str(exc)
                if self.causes.get(name) != cause:  # said once, and again only when the cause changes
                    log.warning(
                        "base images from `%s` (%s) are unavailable: %s; everything else is served; "
                        "retrying every %.0f s",
                        name,
                        _host(url),
                        cause,
                        self._delay,
                        extra={"upstream": name, "cause": cause},
                    )
                self.causes[name] = cause
                continue
            self.caches.append(cache)
            self.urls[name] = cache.url
            del self._pending[name]
            if self.causes.pop(name, None) is not None:
                log.info("base images from `%s` (%s) are available again", name, _host(url))
            else:
                log.info("registry cache for %s is running", name)

    def _retry(self) -> None:
        while self._pending and not self._stop.wait(self._delay):
            self._delay = min(self._delay * 2, 300.0)
            self._try_pending()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(70)
        for cache in list(self.caches):
            cache.stop()


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


_CAUSES = (
    (
        ("no such host", "server misbehaving", "name resolution", "name or service not known"),
        "the name does not resolve",
    ),
    (("connection refused",), "the upstream refuses connections"),
    (("x509", "certificate", "tls:", "handshake"), "its TLS certificate is not accepted"),
    (("i/o timeout", "deadline exceeded", "timeout"), "the upstream did not answer in time"),
    (("network is unreachable", "no route to host"), "there is no network route to it"),
    (("401", "unauthorized", "403", "forbidden"), "the upstream refused access (credentials?)"),
    (("configuration", "yaml:", "parsing"), "the cache's configuration is invalid"),
)


def start_failure(log_path: Path, start: int, url: str) -> str | None:
    """Why docker-registry exited, in words, from what it wrote to its log since `start`: the Go
    panic or fatal line, never its stack."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(start)
            text = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines()]
    reported = [
        line
        for line in lines
        if line.startswith(("panic:", "fatal", "Error:", "configuration error"))
        or "level=fatal" in line
        or "level=error" in line
    ]
    if not reported:
        return None
    lowered = reported[0].lower()
    for needles, cause in _CAUSES:
        if any(needle in lowered for needle in needles):
            return cause
    return f"it exited ({reported[0][:160]})"
