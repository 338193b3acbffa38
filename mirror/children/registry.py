"""Debian's docker-registry as a pull-through cache: one child per upstream, bound to loopback.

The cache knows nothing of the allowlist and keeps serving what it has; Airlock's filter in
`mirror/containers/` is the only way to it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mirror.children.supervisor import ChildError, ChildProcess, free_port

log = logging.getLogger(__name__)


class RegistryCache:
    def __init__(
        self,
        data_dir: Path,
        upstream_name: str,
        upstream_url: str,
        quiet: bool = False,
        storage: dict | None = None,
    ) -> None:
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
        settings = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": cache_storage(storage, upstream_name, root / "storage"),
            "http": {"addr": f"127.0.0.1:{self.port}", "relativeurls": True},
            "proxy": {"remoteurl": upstream_url},
        }
        config.write_text(json.dumps(settings, indent=2))  # JSON is YAML: no quoting of paths to get wrong
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

    def __init__(
        self, data_dir: Path, upstreams: dict[str, str], retry_seconds: float, storage: dict | None = None
    ) -> None:
        self.data_dir = data_dir
        self.storage = storage
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
                cache = RegistryCache(self.data_dir, name, url, quiet=name in self.causes, storage=self.storage)
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


STORAGE_DRIVERS = ("filesystem", "s3", "azure", "gcs", "swift", "oss", "inmemory")
STORAGE_OPTIONS = ("delete", "redirect", "cache", "maintenance", "tag")


def read_registry_storage(path: Path) -> dict:
    """The `storage:` section of AIRLOCK_REGISTRY_STORAGE (the file may hold it under `storage:` or
    be the section itself), checked enough that docker-registry will not refuse it at start."""
    import yaml

    fix = "fix the file or unset AIRLOCK_REGISTRY_STORAGE"
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror}); {fix}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML ({str(exc).splitlines()[0]}); {fix}") from None
    section = loaded.get("storage", loaded) if isinstance(loaded, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"{path}: must be a mapping like `storage: {{s3: {{bucket: NAME, region: R}}}}`; {fix}")
    drivers = _drivers(section)
    unknown = [key for key in drivers if key not in STORAGE_DRIVERS]
    if unknown or len(drivers) != 1:
        named = ", ".join(drivers) or "none"
        raise ValueError(f"{path}: name exactly one storage driver of {', '.join(STORAGE_DRIVERS)} (found: {named})")
    parameters = section[drivers[0]]
    if parameters is not None and not isinstance(parameters, dict):
        raise ValueError(f"{path}: the `{drivers[0]}` driver's parameters must be a mapping; {fix}")
    if drivers[0] == "filesystem" and not (parameters or {}).get("rootdirectory"):
        raise ValueError(f"{path}: `filesystem` needs `rootdirectory` (a volume every replica mounts)")
    return dict(section)


def _drivers(section: dict) -> list[str]:
    """The keys of a `storage:` section that name drivers (the rest are the registry's options)."""
    return [key for key in section if key not in STORAGE_OPTIONS]


def cache_storage(section: dict | None, upstream_name: str, default_root: Path) -> dict:
    """One upstream's `storage:` configuration: its own folder under the configured root (so caches of
    several upstreams never mix), deletes allowed (garbage collection), and no redirects: a blob is
    always served through Airlock, never by sending a workspace to the storage's own URL."""
    if section is None:
        return {"filesystem": {"rootdirectory": str(default_root)}, "delete": {"enabled": True}}
    storage = dict(section)
    (driver,) = _drivers(storage)
    parameters = dict(storage[driver] or {})
    root = str(parameters.get("rootdirectory", "")).rstrip("/")
    parameters["rootdirectory"] = f"{root}/{upstream_name}"
    storage[driver] = parameters
    storage["delete"] = {"enabled": True}
    storage["redirect"] = {"disable": True}
    return storage


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
