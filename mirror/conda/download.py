"""Fetching upstream repodata and package files: parallel, resumable, verified, reused.

A file enters the cache only after its size and SHA-256 match the upstream record; a partial
download is kept as `FILE.part` and resumed with an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirror.progress import Progress

CHUNK = 1 << 16


class FetchError(Exception):
    """An upstream answer Airlock cannot use; the message names the URL or file."""


@dataclass(frozen=True)
class Wanted:
    """One package file to have in the cache."""

    channel: str
    subdir: str
    filename: str
    url: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        """`channel/subdir/file`: its place in the cache and its name in the manifest."""
        return f"{self.channel}/{self.subdir}/{self.filename}"

    def path(self, cache: Path) -> Path:
        return cache / self.key


def fetch_repodata(client: httpx.Client, url: str) -> dict:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: upstream unreachable ({exc.__class__.__name__})") from None
    if response.status_code != 200:
        raise FetchError(f"{url}: upstream answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise FetchError(f"{url}: not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("packages", {}), dict):
        raise FetchError(f"{url}: not a conda repodata.json")
    return data


def _hash_file(path: Path, digest) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK * 16), b""):
            digest.update(chunk)


class VerifiedCache:
    """`{cache}/{channel}/{subdir}/{file}` plus a manifest of the hashes already verified."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        self._manifest_path = root / "verified.json"
        self._lock = threading.Lock()
        try:
            self._verified: dict[str, str] = json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            self._verified = {}

    def has(self, wanted: Wanted) -> bool:
        # Plain strings and one stat: a one-package update asks this of every selected file.
        key = wanted.key
        if self._verified.get(key) != wanted.sha256:
            return False
        try:
            found = os.stat(os.path.join(self._root_text, key))
        except OSError:
            return False
        return stat.S_ISREG(found.st_mode) and found.st_size == wanted.size

    def missing(self, wanted: list[Wanted]) -> list[Wanted]:
        return [w for w in wanted if not self.has(w)]

    def ensure(
        self,
        client: httpx.Client,
        wanted: list[Wanted],
        workers: int = 8,
        on_verified: Callable[[Wanted], None] = lambda wanted: None,
    ) -> list[str]:
        """Download what is missing; returns one problem per file that failed (none: all good).
        `on_verified` hears of each file once it is in the cache, verified (on the thread that
        downloaded it)."""
        missing = self.missing(wanted)
        for folder in {w.path(self.root).parent for w in missing}:
            folder.mkdir(parents=True, exist_ok=True)
        progress = Progress(len(missing), sum(w.size for w in missing), "conda sync")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            problems = [
                problem
                for problem in pool.map(lambda w: self._download(client, w, progress, on_verified), missing)
                if problem
            ]
        progress.close()
        self._save()
        return sorted(problems)

    def _download(
        self, client: httpx.Client, wanted: Wanted, progress: Progress, on_verified: Callable[[Wanted], None]
    ) -> str | None:
        target = wanted.path(self.root)  # its folder was made by `ensure`
        part = target.with_name(target.name + ".part")
        try:
            offset = os.stat(part).st_size
        except FileNotFoundError:
            offset = 0
        if offset > wanted.size:
            part.unlink()
            offset = 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with client.stream("GET", wanted.url, headers=headers) as response:
                if response.status_code == 200:
                    offset, mode = 0, "wb"  # the server ignored Range: start over
                elif response.status_code == 206 and offset:
                    mode = "ab"
                else:
                    return f"{wanted.channel}/{wanted.subdir}/{wanted.filename}: upstream answered HTTP {response.status_code}"
                # Hashed as it arrives (a resumed file: its first part, then the rest): a
                # gigabyte-sized package is not read back from disk to be verified.
                digest = hashlib.sha256()
                if offset:
                    _hash_file(part, digest)
                with open(part, mode) as handle:
                    for chunk in response.iter_bytes(CHUNK):
                        handle.write(chunk)
                        digest.update(chunk)
                        progress.advance(size=len(chunk))
        except httpx.HTTPError as exc:
            return f"{wanted.channel}/{wanted.subdir}/{wanted.filename}: download failed ({exc.__class__.__name__}); run the sync again to resume"
        size = part.stat().st_size
        if size != wanted.size:
            part.unlink()
            return f"{wanted.channel}/{wanted.subdir}/{wanted.filename}: size {size} != {wanted.size} in upstream repodata (truncated or tampered)"
        digest = digest.hexdigest()
        if digest != wanted.sha256:
            part.unlink()
            return f"{wanted.channel}/{wanted.subdir}/{wanted.filename}: sha256 {digest} != {wanted.sha256} in upstream repodata (tampered or corrupt)"
        os.replace(part, target)
        with self._lock:
            self._verified[wanted.key] = wanted.sha256
        progress.advance(files=1)
        on_verified(wanted)
        return None

    def _save(self) -> None:
        temporary = self._manifest_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._verified, sort_keys=True))
        os.replace(temporary, self._manifest_path)
