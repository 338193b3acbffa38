"""PEP 658 core metadata (`FILE.whl.metadata`), served only as the page advertises it.

Where the upstream gives a hash, what Airlock serves must have it: the bytes come from the wheel
itself when devpi holds it (authoritative), else from the upstream's `.metadata` file through devpi,
and are checked against the hash either way. A mismatch is refused with a reason, never served, and
the file's metadata is no longer advertised (clients read the wheel instead). Without an upstream
hash (`AIRLOCK_PYPI_METADATA=extract`), Airlock reads the `METADATA` member of the wheel itself: from
devpi's verified copy when it holds one, else from the upstream's copy by byte ranges (as uv would),
else from the whole wheel fetched through devpi and checked against the page's sha256. Served
metadata is kept in memory (bounded by count and bytes) and on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import zipfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from mirror.pypi.licences import licence_from_metadata
from mirror.pypi.pages import MetadataView, run_once
from mirror.pypi.remote_wheel import RangeFile, RangesUnsupported
from mirror.pypi.simple import FileLink, parse_filename

log = logging.getLogger("airlock.pypi")
MAX_METADATA = 16 << 20
"""Bytes: a METADATA with a long description runs to a few MB; more is not metadata."""
_MEMORY_BYTES = 64 << 20
_MEMORY_ENTRIES = 4096
_KNOWN_HASHES = 200_000


FileOpener = Callable[[str], Awaitable[httpx.Response]]


class MetadataRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CoreMetadata:
    def __init__(self, folder: Path, stored_files: Path | None, extract: bool, timeout: float = 30.0) -> None:
        self._folder = folder
        self._ranges = httpx.Client(timeout=timeout, follow_redirects=True, limits=httpx.Limits(max_connections=16))
        self._stored_files = stored_files
        self.extract = extract
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_bytes = 0
        self._hashes: dict[str, str] = {}
        self._distrusted: set[str] = set()
        self._licences: dict[str, str] = {}
        """relpath -> the licence its metadata states ("" for none)."""
        self._project_licences: dict[str, str] = {}
        self._version = 0
        self._inflight: dict[str, asyncio.Future] = {}

    def close(self) -> None:
        self._ranges.close()

    def view(self) -> MetadataView:
        return MetadataView(
            self.extract, lambda: self._hashes, lambda: frozenset(self._distrusted), lambda: self._version
        )

    async def get(self, link: FileLink, open_file: FileOpener) -> bytes:
        """The metadata of `link` (a wheel the page advertises metadata for); raises MetadataRefused.
        `open_file(relpath)`: devpi's streaming response for a file (`ProjectPages.open_file`)."""
        found = self._memory.get(link.relpath)
        if found is not None:
            self._memory.move_to_end(link.relpath)
            return found
        return await run_once(self._inflight, link.relpath, lambda: self._load(link, open_file))

    async def _load(self, link: FileLink, open_file: FileOpener) -> bytes:
        on_disk = self._folder / f"{link.relpath}.metadata"
        try:
            body = await asyncio.to_thread(on_disk.read_bytes)
        except OSError:
            body = await self._fetch(link, open_file)
            expected = link.core_metadata if isinstance(link.core_metadata, str) else None
            actual = hashlib.sha256(body).hexdigest()
            if expected is not None and actual != expected:
                self._distrusted.add(link.relpath)
                self._version += 1
                log.warning(
                    "refusing the metadata of %s: its sha256 %s is not the %s the upstream's page gives",
                    link.filename,
                    actual,
                    expected,
                )
                raise MetadataRefused(
                    502,
                    f"the metadata of {link.filename} does not match the sha256 the upstream's page "
                    "gives for it; Airlock refuses it (install reads the wheel instead: try again)",
                ) from None
            await asyncio.to_thread(_write_atomically, on_disk, body)
        self._remember(link.relpath, body)
        return body

    async def _fetch(self, link: FileLink, open_file: FileOpener) -> bytes:
        wheel = self._stored(link.relpath)
        if wheel is not None:
            return await asyncio.to_thread(read_wheel_metadata, wheel, link.filename)
        if not isinstance(link.core_metadata, str) and self.extract:
            if link.upstream_url and link.size:
                try:
                    return await asyncio.to_thread(self._from_ranges, link)
                except (RangesUnsupported, httpx.HTTPError, MetadataRefused) as exc:
                    log.info(
                        "reading %s's metadata by byte ranges failed (%s); fetching the whole wheel", link.filename, exc
                    )
            return await self._from_fetched_wheel(link, open_file)
        try:
            response = await open_file(f"{link.relpath}.metadata")
            await response.aread()
            await response.aclose()
        except httpx.HTTPError as exc:
            raise MetadataRefused(
                503, f"the PyPI cache (devpi) did not answer ({exc.__class__.__name__}); try again"
            ) from None
        if response.status_code == 404:
            raise MetadataRefused(
                404, f"the upstream index advertises metadata for {link.filename} but does not serve it"
            )
        if response.status_code != 200 or len(response.content) > MAX_METADATA:
            raise MetadataRefused(
                503,
                f"the metadata of {link.filename} is unavailable (devpi answered {response.status_code}); try again",
            )
        return response.content

    def _from_ranges(self, link: FileLink) -> bytes:
        """METADATA read from the upstream's copy of the wheel by byte ranges (a few KB, not the wheel)."""
        assert link.upstream_url is not None and link.size is not None
        return read_wheel_metadata(RangeFile(self._ranges, link.upstream_url, link.size), link.filename)

    async def _from_fetched_wheel(self, link: FileLink, open_file: FileOpener) -> bytes:
        """Fetch the whole wheel through devpi (which keeps it), check its sha256 against the page,
        and read METADATA from the bytes fetched (devpi files its copy a moment later)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = self._folder / f".{link.filename}.{os.getpid()}.{id(link)}.part"
        digest = hashlib.sha256()
        try:
            response = await open_file(link.relpath)
            try:
                if response.status_code != 200:
                    raise MetadataRefused(
                        404 if response.status_code == 404 else 503,
                        f"{link.filename} is unavailable upstream (devpi answered {response.status_code})",
                    )
                with open(temporary, "wb") as handle:
                    async for chunk in response.aiter_raw():
                        digest.update(chunk)
                        handle.write(chunk)
            finally:
                await response.aclose()
            if link.sha256 and digest.hexdigest() != link.sha256:
                raise MetadataRefused(
                    502,
                    f"{link.filename} from the upstream does not have the sha256 its page gives; Airlock refuses it",
                )
            return await asyncio.to_thread(read_wheel_metadata, temporary, link.filename)
        except httpx.HTTPError as exc:
            raise MetadataRefused(
                503, f"the PyPI cache (devpi) did not answer ({exc.__class__.__name__}); try again"
            ) from None
        finally:
            temporary.unlink(missing_ok=True)

    def _stored(self, relpath: str) -> Path | None:
        if self._stored_files is None:
            return None
        path = self._stored_files / relpath
        return path if path.is_file() else None

    def licence_of(self, relpath: str, filename: str) -> str | None:
        """The licence the file's metadata states, when Airlock holds that metadata; else the
        licence it last read for the project (licences rarely change between releases)."""
        found = self._licences.get(relpath)
        if found is None:
            on_disk = self._folder / f"{relpath}.metadata"
            try:
                found = self._licence_seen(relpath, on_disk.read_bytes())
            except OSError:
                parsed = parse_filename(filename)
                return self._project_licences.get(parsed[0]) if parsed else None
        return found or None

    def _licence_seen(self, relpath: str, body: bytes) -> str:
        licence = licence_from_metadata(body) or ""
        if len(self._licences) >= _KNOWN_HASHES:
            self._licences.clear()
        self._licences[relpath] = licence
        parsed = parse_filename(relpath.rsplit("/", 1)[-1])
        if licence and parsed is not None:
            if len(self._project_licences) >= _KNOWN_HASHES:
                self._project_licences.clear()
            self._project_licences[parsed[0]] = licence
        return licence

    def _remember(self, relpath: str, body: bytes) -> None:
        digest = hashlib.sha256(body).hexdigest()
        if self.extract and self._hashes.get(relpath) != digest:
            if len(self._hashes) >= _KNOWN_HASHES:
                self._hashes.clear()
            self._hashes[relpath] = digest
            self._version += 1  # pages now give the hash
        self._licence_seen(relpath, body)
        self._memory[relpath] = body
        self._memory_bytes += len(body)
        while self._memory and (len(self._memory) > _MEMORY_ENTRIES or self._memory_bytes > _MEMORY_BYTES):
            self._memory_bytes -= len(self._memory.popitem(last=False)[1])


def read_wheel_metadata(wheel: Path | RangeFile, filename: str) -> bytes:
    """The `METADATA` member of a wheel's `.dist-info` (PEP 658: served byte for byte)."""
    parsed = parse_filename(filename)
    try:
        with zipfile.ZipFile(wheel) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if parsed is not None:
                named = [info for info in candidates if _dist_info_name(info.filename) == parsed[0]]
                candidates = named or candidates
            if len(candidates) != 1:
                raise MetadataRefused(502, f"{filename} has {len(candidates)} .dist-info/METADATA files, not one")
            if candidates[0].file_size > MAX_METADATA:
                raise MetadataRefused(502, f"{filename}'s METADATA is over {MAX_METADATA >> 20} MiB")
            return archive.read(candidates[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise MetadataRefused(502, f"{filename} is not a readable wheel ({exc})") from None


def _dist_info_name(member: str) -> str:
    """`Foo_Bar-1.0.dist-info/METADATA` -> `foo-bar`."""
    return str(canonicalize_name(member.split("/", 1)[0].removesuffix(".dist-info").rpartition("-")[0]))


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(body)
    temporary.replace(path)
