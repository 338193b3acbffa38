"""Writing a bbolt file Trivy (Go, go.etcd.io/bbolt) accepts, with the pure-Python `boltdb` package.

`boltdb` 0.0.2 writes pages bbolt can read but leaves each meta page's checksum at 0, and bbolt
refuses such a file ("checksum error"). The fix, checked on this machine (../shared/FACTS.md): FNV-1a
64 over the meta's first 56 bytes, stored at meta offset 56; the meta begins at byte 16 (after the
page header) of pages 0 and 1.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

_PAGE_HEADER = 16
_META_CHECKED = 56
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a_64(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


Tree = Mapping[bytes, "bytes | Tree"]
"""A bucket: keys to values (bytes) or to nested buckets (mappings)."""


def write_bolt(path: Path, buckets: Mapping[bytes, Tree]) -> None:
    """Write top-level buckets (each a Tree) into a new bbolt file at `path`, in one transaction."""
    from boltdb import BoltDB  # imported here: only `db build` needs it

    path.unlink(missing_ok=True)
    db = BoltDB(str(path))
    try:
        with db.update() as tx:
            for name, tree in buckets.items():
                _fill(tx.create_bucket(name), tree.items())
    finally:
        db.close()
        db.close = lambda: None  # boltdb's __del__ closes again and fails on the closed descriptor
    seal_meta_pages(path)


def _fill(bucket, items: Iterable[tuple[bytes, object]]) -> None:
    # bbolt wants keys in order within a page; boltdb inserts in sorted position either way, but sorted
    # input keeps its node splits cheap.
    for key, value in sorted(items):
        if isinstance(value, Mapping):
            _fill(bucket.create_bucket(key), value.items())
        else:
            bucket.put(key, value)


def seal_meta_pages(path: Path) -> None:
    with open(path, "r+b") as handle:
        page_size = struct.unpack_from("<I", _read(handle, _PAGE_HEADER + 8, 4))[0]
        for page in (0, 1):
            start = page * page_size + _PAGE_HEADER
            meta = _read(handle, start, _META_CHECKED)
            handle.seek(start + _META_CHECKED)
            handle.write(struct.pack("<Q", fnv1a_64(meta)))


def _read(handle, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)
