"""devpi-server as Airlock's PyPI cache: a child on 127.0.0.1 with one mirror index.

devpi caches pages and files from the upstream and keeps serving them when the upstream is
down. It enforces nothing: only Airlock's filter decides what leaves through the public port.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import httpx

from mirror.children.supervisor import ChildError, ChildProcess, free_port, run_command

INDEX = "root/upstream"
"""The one mirror index; Airlock reads `/{INDEX}/+simple/…` and `/{INDEX}/+f/…`."""


def write_private(path: Path, content: bytes) -> None:
    """Create `path` readable by this user alone, with `content`; an existing file is kept."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def _tool(name: str) -> str:
    """devpi's commands come with Airlock's environment; prefer the ones beside this Python."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise ChildError(f"{name} is not installed in Airlock's environment (reinstall: scripts/run)")
    return found


class DevpiServer:
    def __init__(self, data_dir: Path, upstream: str, cache_expiry: int, timeout: float) -> None:
        self.server_dir = data_dir / "devpi"
        self.upstream = upstream
        self.cache_expiry = cache_expiry
        self.timeout = timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._password_file = data_dir / "devpi-root-password"
        self._secret_file = data_dir / "devpi-secret"
        self.child = ChildProcess(
            name="devpi-server",
            argv=[
                _tool("devpi-server"),
                "--serverdir",
                str(self.server_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--secretfile",
                str(self._secret_file),
                "--enable-core-metadata",
                "--mirror-cache-expiry",
                str(cache_expiry),
                "--proxy-timeout",
                str(int(timeout)),
            ],
            log_path=data_dir / "logs" / "devpi-server.log",
            ready=self._answers,
            ready_timeout=120.0,
        )

    @property
    def index_url(self) -> str:
        return f"{self.url}/{INDEX}"

    @property
    def stored_files(self) -> Path:
        """Where devpi keeps the index's verified files (`…/+f/{relpath}`)."""
        return self.server_dir / "+files" / INDEX / "+f"

    def start(self) -> None:
        self._initialise()
        self.child.start()
        self._ensure_index()

    def stop(self) -> None:
        self.child.stop()

    def healthy(self) -> bool:
        return self.child.healthy()

    def _answers(self) -> bool:
        return httpx.get(f"{self.url}/+api", timeout=2.0).status_code == 200

    def _initialise(self) -> None:
        self.server_dir.parent.mkdir(parents=True, exist_ok=True)
        # Both secrets are created private (no moment in which another user could read them), and
        # the root password reaches devpi-init through its environment, not its world-readable
        # command line.
        write_private(self._password_file, secrets.token_urlsafe(24).encode())
        write_private(self._secret_file, base64.b64encode(secrets.token_bytes(32)))  # devpi's own format
        if not (self.server_dir / ".nodeinfo").exists():
            run_command(
                [_tool("devpi-init"), "--serverdir", str(self.server_dir), "--no-root-pypi"],
                120,
                "devpi-init",
                env={**os.environ, "DEVPISERVER_ROOT_PASSWD": self._password_file.read_text().strip()},
            )

    def _ensure_index(self) -> None:
        """Create or update the mirror index so it follows the configured upstream."""
        wanted = {
            # no_project_list: ask the upstream for a project directly, instead of loading its whole
            # project list first (on a fresh server dir a slow list made devpi answer "no such project").
            # provides_core_metadata: devpi fetches FILE.metadata from the upstream on request; Airlock
            # asks for it only where the upstream's own page advertises it (mirror/pypi/metadata.py).
            "type": "mirror",
            "mirror_url": self.upstream,
            "mirror_provides_core_metadata": True,
            "mirror_no_project_list": True,
            "mirror_cache_expiry": self.cache_expiry,
            "volatile": False,
        }
        auth = ("root", self._password_file.read_text().strip())
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.url, auth=auth, headers=headers, timeout=30.0) as client:
            current = client.get(f"/{INDEX}")
            if current.status_code == 404:
                response = client.put(f"/{INDEX}", content=json.dumps(wanted))
            elif current.status_code == 200:
                config = current.json().get("result", {})
                if all(config.get(key) == value for key, value in wanted.items()):
                    return
                response = client.patch(f"/{INDEX}", content=json.dumps({**config, **wanted}))
            else:
                raise ChildError(f"devpi-server answered {current.status_code} for its index: {current.text[:200]}")
            if response.status_code not in (200, 201):
                raise ChildError(
                    f"devpi-server refused to configure {INDEX}: {response.status_code} {response.text[:300]}"
                )
