"""Build what a conda channel serves: real `.tar.bz2` and `.conda` packages and repodata.json.

Each package has `info/index.json`, `info/paths.json`, `info/files` and a payload file, so that
conda-index can index it and py-rattler can install it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

TIMESTAMP_MS = 1_700_000_000_000


@dataclass(frozen=True)
class CondaPackage:
    name: str
    version: str
    build: str
    subdir: str = "linux-64"
    depends: tuple[str, ...] = ()
    fmt: str = ".tar.bz2"
    """`.tar.bz2` or `.conda`."""
    payload: bytes = b""
    license: str = "MIT"
    timestamp_ms: int | None = None
    """When the package was built (its `timestamp`, milliseconds); default TIMESTAMP_MS."""

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}{self.fmt}"

    def index_json(self) -> dict:
        data = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": 0,
            "depends": list(self.depends),
            "license": self.license,
            "subdir": self.subdir,
            "timestamp": self.timestamp_ms if self.timestamp_ms is not None else TIMESTAMP_MS,
        }
        if self.subdir == "noarch":
            data["noarch"] = "generic"
        else:
            data["platform"], data["arch"] = self.subdir.split("-")[0], "x86_64"
        return data


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_package(package: CondaPackage) -> bytes:
    payload_path = f"share/{package.name}/{package.version}-{package.build}.txt"
    payload = package.payload or f"{package.name} {package.version} {package.build}\n".encode()
    paths = {
        "paths": [
            {
                "_path": payload_path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size_in_bytes": len(payload),
            }
        ],
        "paths_version": 1,
    }
    info = {
        "info/index.json": json.dumps(package.index_json()).encode(),
        "info/paths.json": json.dumps(paths).encode(),
        "info/files": f"{payload_path}\n".encode(),
    }
    if package.fmt == ".tar.bz2":
        return _tar({**info, payload_path: payload}, "w:bz2")
    stem = package.filename[: -len(".conda")]
    compressor = zstandard.ZstdCompressor()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        archive.writestr(f"pkg-{stem}.tar.zst", compressor.compress(_tar({payload_path: payload}, "w")))
        archive.writestr(f"info-{stem}.tar.zst", compressor.compress(_tar(info, "w")))
    return buffer.getvalue()


@dataclass
class CondaChannelDir:
    """An upstream channel folder: `{subdir}/{file}` and `{subdir}/repodata.json`."""

    root: Path
    packages: list[CondaPackage] = field(default_factory=list)

    def add(self, *packages: CondaPackage) -> None:
        self.packages.extend(packages)

    def publish(self) -> None:
        repodata: dict[str, dict] = {}
        for subdir in {"noarch", "linux-64"} | {p.subdir for p in self.packages}:
            (self.root / subdir).mkdir(parents=True, exist_ok=True)
            repodata[subdir] = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "repodata_version": 1}
        for package in self.packages:
            path = self.root / package.subdir / package.filename
            if not path.exists():
                path.write_bytes(build_package(package))
            data = path.read_bytes()
            record = {
                **package.index_json(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "md5": hashlib.md5(data).hexdigest(),
                "size": len(data),
            }
            key = "packages.conda" if package.fmt == ".conda" else "packages"
            repodata[package.subdir][key][package.filename] = record
        for subdir, data in repodata.items():
            (self.root / subdir / "repodata.json").write_text(json.dumps(data, indent=1, sort_keys=True))
