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
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from gate.errors import GateError

_BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_HARD_LINK, _SYMLINK, _FOLDER = b"1", b"2", b"5"
_LONG_NAME, _LONG_LINK, _PAX = b"L", b"K", b"x"
_HEADER_ONLY = (_HARD_LINK, _SYMLINK, b"3", b"4", _FOLDER, b"6")

_OCI_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
MAX_WANTED_FILE = 64 << 20
"""Bytes of one wanted file (a conda record lists every file of its package: megabytes at most)."""
MAX_UNPACKED = 256 << 30
"""Bytes of all layers decompressed: a gzip bomb ends the read with exit 2, not an exhausted machine."""


class Member(NamedTuple):
    path: str
    kind: bytes
    size: int
    link: str
    """A hard link's target path or a symlink's target, as written."""
    offset: int
    """Where the member's data starts in the decompressed layer."""


def final_files(
    image: Path, wanted: Callable[[str], bool], guarded_folder: Callable[[str], bool] = lambda path: False
) -> dict[str, tuple[str, bytes]]:
    """`{path: (diff_id of the layer that wrote it, content)}` for the wanted regular files the
    image's top layer still shows. A wanted file stored as a hard link is read from its target (as
    Docker extracts it); a wanted file, or a `guarded_folder` (one whose files are wanted), that is
    a symbolic link cannot be vetted and fails the read: it would hide what it points at."""
    found = _Found()
    budget = [MAX_UNPACKED]
    with contextlib.ExitStack() as stack:
        for diff_id, layer in _layers(image, stack):
            try:
                _walk(layer, diff_id, wanted, guarded_folder, found, budget)
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
    for folder, target in sorted(found.linked_folders.items()):
        raise GateError(
            f"/{folder} is a symbolic link to {target}: the package records behind it would be installed but not "
            "vetted; rebuild the image with a real folder there"
        )
    return found.files


def _walk(
    layer: IO[bytes],
    diff_id: str,
    wanted: Callable[[str], bool],
    guarded_folder: Callable[[str], bool],
    found: _Found,
    budget: list[int],
) -> None:
    regular: dict[str, tuple[int, int]] = {}  # path -> (offset, size): where a hard link's target is
    for member in _members(layer):
        path, kind, size = member.path, member.kind, member.size
        if _padded(size) + member.offset > budget[0]:
            raise GateError(
                f"layer {diff_id} unpacks to over {MAX_UNPACKED >> 30} GiB (with the layers below it): "
                "a decompression bomb or not an image the gate can read; nothing can be vetted"
            )
        folder, _, name = path.rpartition("/")
        if name == ".wh..wh..opq":  # an opaque folder hides what lower layers put in it
            found.drop(folder, only_inside=True)
        elif name.startswith(".wh."):  # `.wh.NAME`: NAME is gone
            found.drop(f"{folder}/{name[4:]}" if folder else name[4:])
        elif kind in _REGULAR:
            regular[path] = (member.offset, size)
            if wanted(path):
                found.add(path, (diff_id, _read(layer, member, path)))
            else:  # a file where a wanted file (or its folder) was
                found.drop(path)
        elif wanted(path) and kind == _HARD_LINK:
            target = member.link.removeprefix("./").lstrip("/")
            if target not in regular:
                raise ValueError(f"/{path} is a hard link to /{target}, which the layer does not hold before it")
            offset, target_size = regular[target]
            found.add(path, (diff_id, _read(layer, member._replace(offset=offset, size=target_size), path)))
        elif wanted(path) and kind == _SYMLINK:
            raise GateError(
                f"/{path} is a symbolic link to {member.link}: a package record the gate cannot vet where it "
                "stands; rebuild the image with the file itself there"
            )
        elif kind == _SYMLINK and guarded_folder(path):
            found.drop(path)
            found.linked_folders[path] = member.link
        elif kind != _FOLDER:  # a file or link where a wanted file (or its folder) was
            found.drop(path)
        elif path in found.linked_folders:  # a real folder replaces the link
            del found.linked_folders[path]
        layer.seek(member.offset + _padded(size))
    budget[0] -= layer.tell()


class _Found:
    """The wanted files so far, and every folder above them (so that most paths are a set lookup)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.folders: set[str] = set()
        self.linked_folders: dict[str, str] = {}

    def add(self, path: str, value: tuple[str, bytes]) -> None:
        self.files[path] = value
        parts = path.split("/")
        self.folders.update("/".join(parts[:end]) for end in range(1, len(parts)))

    def drop(self, path: str, only_inside: bool = False) -> None:
        if not only_inside:
            self.files.pop(path, None)
            self.linked_folders.pop(path, None)
        inside = path + "/"
        for name in [name for name in self.linked_folders if name.startswith(inside)]:
            del self.linked_folders[name]
        if path in self.folders:
            for name in [name for name in self.files if name.startswith(inside)]:
                del self.files[name]


def _padded(size: int) -> int:
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _read(layer: IO[bytes], member: Member, path: str) -> bytes:
    if member.size > MAX_WANTED_FILE:
        raise GateError(
            f"/{path} is {member.size} bytes, over the {MAX_WANTED_FILE >> 20} MiB a package record can be: "
            "the gate will not read it into memory, and cannot vet the image"
        )
    layer.seek(member.offset)
    data = layer.read(member.size)
    if len(data) != member.size:
        raise EOFError(f"/{path} ends early")
    return data


def _members(layer: IO[bytes]) -> Iterator[Member]:
    """Each member, its PAX or GNU long names and sizes applied (a PAX `size` overrides the header's,
    as Go's archive/tar — Trivy's and Docker's reader — does); the stream is left at its data."""
    extended: dict[str, str] = {}
    while True:
        header = layer.read(_BLOCK)
        if len(header) < _BLOCK or header == bytes(_BLOCK):
            return
        if not _checksum_holds(header):
            raise ValueError(f"no valid tar header at byte {layer.tell() - _BLOCK}")
        kind, size = header[156:157], _size(header[124:136])
        if kind in (_PAX, _LONG_NAME, _LONG_LINK):
            if size > 1 << 20:
                raise ValueError(f"an extended header of {size} bytes at byte {layer.tell() - _BLOCK}")
            data = layer.read(_padded(size))[:size]
            if kind == _PAX:
                extended.update(_pax_records(data))
            else:
                extended["path" if kind == _LONG_NAME else "linkpath"] = data.rstrip(b"\0").decode("utf-8", "replace")
            continue
        if kind == b"g":  # PAX global header: nothing about this member
            layer.seek(_padded(size), 1)
            continue
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        path = extended.get("path") or (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
        link = extended.get("linkpath") or header[157:257].split(b"\0", 1)[0].decode("utf-8", "replace")
        if "size" in extended:
            if not extended["size"].isdigit():
                raise ValueError(f"a PAX size {extended['size'][:40]!r} that is not a number")
            size = int(extended["size"])
        extended = {}
        if kind in _HEADER_ONLY:  # links, folders, devices carry no data whatever size they declare
            size = 0
        yield Member(path.removeprefix("./").strip("/"), kind, size, link, layer.tell())


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


def _pax_records(data: bytes) -> dict[str, str]:
    """`LENGTH KEY=VALUE\n` records; the ones that change how a member is read."""
    records = {}
    for record in data.split(b"\n"):
        key, _, value = record.partition(b" ")[2].partition(b"=")
        if key in (b"path", b"linkpath", b"size"):
            records[key.decode()] = value.decode("utf-8", "replace")
    return records


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
    def blob(digest: object) -> Path:
        # A digest becomes a path: only `ALGORITHM:HEX` of a known length may (no `..`, no `/`).
        if not isinstance(digest, str) or not _OCI_DIGEST.match(digest):
            raise GateError(
                f"the OCI layout {layout} names a blob {str(digest)[:100]!r} that is not a sha256 or sha512 "
                "digest: not a layout the gate will open; export the image again"
            )
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
