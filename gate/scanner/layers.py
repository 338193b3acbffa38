"""An image's final files of interest, read from its layers in order (whiteouts applied), for what
Trivy does not report (`conda_meta`).

Reads what `--input` became (`gate.archive.scannable`) or what the engine exported: a docker-archive
tar, whose layers are tars inside it, or an OCI layout folder, whose layers are blobs; either may be
gzip-compressed. Tar headers are parsed by hand: `tarfile` costs ~25 µs a member, and an ML image
holds 100,000 files. A layer the gate cannot read leaves it unable to decide (fail closed).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from gate.errors import GateError

_BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_LONG_NAME = (b"x", b"L")  # a PAX header or a GNU long name: the next member's real path


def final_files(image: Path, wanted: Callable[[str], bool]) -> dict[str, tuple[str, bytes]]:
    """`{path: (diff_id of the layer that wrote it, content)}` for the wanted regular files the
    image's top layer still shows."""
    found = _Found()
    with contextlib.ExitStack() as stack:
        for diff_id, layer in _layers(image, stack):
            try:
                _walk(layer, diff_id, wanted, found)
            except (
                ValueError,
                OSError,
                EOFError,
                zlib.error,
                tarfile.TarError,
            ) as exc:  # a bad header, a broken gzip stream, a short read
                raise GateError(
                    f"layer {diff_id} of {image} is not a readable tar ({exc}): the image archive is corrupt; "
                    "export the image again"
                ) from None
    return found.files


def _walk(layer: IO[bytes], diff_id: str, wanted: Callable[[str], bool], found: _Found) -> None:
    for path, kind, size in _members(layer):
        folder, _, name = path.rpartition("/")
        if name == ".wh..wh..opq":  # an opaque folder hides what lower layers put in it
            found.drop(folder, only_inside=True)
        elif name.startswith(".wh."):  # `.wh.NAME`: NAME is gone
            found.drop(f"{folder}/{name[4:]}" if folder else name[4:])
        elif kind in _REGULAR and wanted(path):
            found.add(path, (diff_id, _read(layer, size)))
            continue
        elif kind != b"5":  # a file or link where a wanted file (or its folder) was
            found.drop(path)
        layer.seek(_padded(size), 1)


class _Found:
    """The wanted files so far, and every folder above them (so that most paths are a set lookup)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.folders: set[str] = set()

    def add(self, path: str, value: tuple[str, bytes]) -> None:
        self.files[path] = value
        parts = path.split("/")
        self.folders.update("/".join(parts[:end]) for end in range(1, len(parts)))

    def drop(self, path: str, only_inside: bool = False) -> None:
        if not only_inside:
            self.files.pop(path, None)
        if path in self.folders:
            inside = path + "/"
            for name in [name for name in self.files if name.startswith(inside)]:
                del self.files[name]


def _padded(size: int) -> int:
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _read(layer: IO[bytes], size: int) -> bytes:
    data = layer.read(size)
    layer.seek(_padded(size) - size, 1)
    return data


def _members(layer: IO[bytes]) -> Iterator[tuple[str, bytes, int]]:
    """(path, type flag, size) of each member; the stream is left at the member's data."""
    long_name: str | None = None
    while True:
        header = layer.read(_BLOCK)
        if len(header) < _BLOCK or header == bytes(_BLOCK):
            return
        if not _checksum_holds(header):
            raise ValueError(f"no valid tar header at byte {layer.tell() - _BLOCK}")
        kind, size = header[156:157], _size(header[124:136])
        if kind in _LONG_NAME:
            data = _read(layer, size)
            long_name = _pax_path(data) if kind == b"x" else data.rstrip(b"\0").decode("utf-8", "replace")
            continue
        if kind == b"g":  # PAX global header: nothing about paths here
            layer.seek(_padded(size), 1)
            continue
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        path = long_name or (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
        long_name = None
        yield path.removeprefix("./").lstrip("/"), kind, size


def _checksum_holds(header: bytes) -> bool:
    """The byte sum with the checksum field counted as spaces; old tars wrote it over signed bytes."""
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:  # not octal digits: not a tar header at all
        return False
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32
    return stored == unsigned or stored == unsigned - 256 * sum(1 for b in header if b > 127)


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # base-256, for members over 8 GiB
        return int.from_bytes(field[1:], "big")
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _pax_path(data: bytes) -> str | None:
    for record in data.split(b"\n"):
        key, _, value = record.partition(b" ")[2].partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "replace")
    return None


def _layers(image: Path, stack: contextlib.ExitStack) -> Iterator[tuple[str, IO[bytes]]]:
    """(diff_id, layer stream) bottom-up; the streams close with `stack`."""
    try:
        if image.is_dir():
            yield from _oci_layers(image, stack)
            return
        archive = stack.enter_context(tarfile.open(image, "r:*"))  # noqa: SIM115 - `stack` is the context
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        diff_ids = json.load(archive.extractfile(manifest["Config"]))["rootfs"]["diff_ids"]
        for diff_id, name in zip(diff_ids, manifest["Layers"], strict=True):
            yield diff_id, _decompressed(archive.extractfile(name), stack)
    except (OSError, KeyError, IndexError, ValueError, tarfile.TarError) as exc:
        raise GateError(
            f"cannot read the layers of {image} ({exc.__class__.__name__}: {exc}) to find the conda packages "
            "Trivy does not list: nothing can be vetted"
        ) from None


def _oci_layers(layout: Path, stack: contextlib.ExitStack) -> Iterator[tuple[str, IO[bytes]]]:
    def blob(digest: str) -> Path:
        return layout / "blobs" / digest.replace(":", "/", 1)

    def document(digest: str) -> dict:
        return json.loads(blob(digest).read_bytes())

    descriptor = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    while "index" in descriptor.get("mediaType", "") or "list" in descriptor.get("mediaType", ""):  # multi-platform
        manifests = document(descriptor["digest"])["manifests"]
        descriptor = next((m for m in manifests if m.get("platform", {}).get("architecture") == "amd64"), manifests[0])
    manifest = document(descriptor["digest"])
    diff_ids = document(manifest["config"]["digest"])["rootfs"]["diff_ids"]
    for diff_id, layer in zip(diff_ids, manifest["layers"], strict=True):
        if "zstd" in layer.get("mediaType", ""):
            raise GateError(
                f"layer {diff_id} of {layout} is zstd-compressed, which the gate cannot read: export the image "
                "with gzip layers (or `docker save` it)"
            )
        yield diff_id, _decompressed(open(blob(layer["digest"]), "rb"), stack)  # noqa: SIM115 - `stack` closes it


def _decompressed(stream: IO[bytes], stack: contextlib.ExitStack) -> IO[bytes]:
    stack.enter_context(stream)
    magic = stream.read(2)
    stream.seek(0)
    return stack.enter_context(gzip.GzipFile(fileobj=stream)) if magic == b"\x1f\x8b" else stream
