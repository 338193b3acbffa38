"""Reading one member of a wheel on an HTTP server by byte ranges, as uv's lazy reader does.

A wheel is a zip whose central directory sits at its end: the end record, the directory, then the
member's local header and data — three or four small range requests instead of the whole file
(hundreds of MB for an ML wheel). `zipfile` does the parsing over a file object whose reads are
range requests, so a hostile archive is rejected by the same code that reads any wheel.
"""

from __future__ import annotations

import io

import httpx

_BLOCK = 64 << 10
"""Bytes per range request: the end of a wheel (end record and central directory) usually fits."""
_MAX_BLOCKS = 256
"""At most 16 MiB read from one wheel by ranges."""


class RangesUnsupported(Exception):
    """The server answered a range request with the whole file (or not at all)."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of `url` whose reads are HTTP range requests, in blocks."""

    def __init__(self, client: httpx.Client, url: str, size: int) -> None:
        super().__init__()
        self._client, self._url, self._size = client, url, size
        self._position = 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), max(0, self._size - self._position))
        data = bytearray()
        while len(data) < wanted:
            block = (self._position + len(data)) // _BLOCK
            start = (self._position + len(data)) - block * _BLOCK
            data += self._block(block)[start : start + wanted - len(data)]
        buffer[:wanted] = data
        self._position += wanted
        return wanted

    def _block(self, number: int) -> bytes:
        found = self._blocks.get(number)
        if found is None:
            if len(self._blocks) >= _MAX_BLOCKS:
                raise RangesUnsupported(f"more than {_MAX_BLOCKS * _BLOCK >> 20} MiB read by ranges")
            first, last = number * _BLOCK, min(self._size, (number + 1) * _BLOCK) - 1
            response = self._client.get(self._url, headers={"Range": f"bytes={first}-{last}"})
            if response.status_code != 206 or len(response.content) != last - first + 1:
                raise RangesUnsupported(f"the server answered a byte range with HTTP {response.status_code}")
            found = self._blocks[number] = response.content
        return found
