"""What `--input` names, made into something Trivy scans: a docker-archive (`docker save`), an OCI
archive (`docker buildx --output type=oci`, `podman save --format oci-archive`, `skopeo copy
oci-archive:…`) or an OCI layout folder.

Trivy's `--input` opens a docker-archive tar or an OCI layout *folder*, not an OCI tar, so an OCI
tar is unpacked into the gate's work folder first. Standard library only: this runs before Trivy
starts.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from gate.errors import GateError

_GIVE = "give a docker-archive (docker save IMAGE -o FILE) or an OCI archive or layout"


def scannable(path: Path, workdir: Path) -> Path:
    """The path to give Trivy for `path`; a GateError names what is wrong with it."""
    if path.is_dir():
        if (path / "index.json").is_file():
            return path
        raise GateError(f"{path} is a folder without index.json, not an OCI image layout: {_GIVE}")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise GateError(f"cannot read the image archive {path}: {_GIVE}")
    try:
        with _open(path) as archive:
            top = {PurePosixPath(member.name).as_posix().lstrip("./") for member in archive}
            if "manifest.json" in top:  # docker-archive (Docker 25+ writes index.json beside it)
                return path
            if "index.json" in top:
                return _unpacked(archive, workdir / "oci-layout", path)
    except tarfile.TarError:
        raise GateError(f"the image archive {path} is not a tar file: {_GIVE}") from None
    except OSError as exc:
        raise GateError(f"cannot read the image archive {path} ({exc.strerror or exc}): {_GIVE}") from None
    raise GateError(
        f"the image archive {path} holds neither manifest.json (docker-archive) nor index.json (OCI): {_GIVE}"
    )


def _open(path: Path) -> tarfile.TarFile:
    """A plain tar first: mode "r" would load gzip, bz2 and lzma (~3 ms before Trivy starts) to try
    them before it; a compressed archive (`docker save | gzip`) is still read."""
    try:
        return tarfile.open(path, "r:")
    except tarfile.ReadError:
        return tarfile.open(path, "r:*")


def _unpacked(archive: tarfile.TarFile, folder: Path, path: Path) -> Path:
    """Regular files and folders only, each inside `folder`: an image layout holds nothing else."""
    for member in archive.getmembers():
        parts = PurePosixPath(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise GateError(f"the OCI archive {path} holds {member.name!r}, which no image layout has: {_GIVE}")
        target = folder.joinpath(*parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.extractfile(member) as source, open(target, "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
    return folder
