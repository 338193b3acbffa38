"""Debian's docker-registry as a pull-through cache: one child per upstream, bound to loopback.

The cache knows nothing of the allowlist and keeps serving what it has; Airlock's filter in
`mirror/containers/` is the only way to it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from mirror.children.supervisor import ChildError, ChildProcess, free_port


class RegistryCache:
    def __init__(self, data_dir: Path, upstream_name: str, upstream_url: str) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ChildError("docker-registry is not installed (Debian package docker-registry; scripts/run installs it)")
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
