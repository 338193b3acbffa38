"""The image to judge: a local engine reference, a registry reference, or an archive.

Each becomes an archive Trivy scans (`--input`), and each knows how to discard itself when the
gate fails it: removed from the engine, its manifest deleted from the registry (by digest), the
archive file removed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gate.interface import GateError
from gate.registry import RegistryClient

ENGINE_TIMEOUT = 300


def split_reference(reference: str) -> tuple[str | None, str, str]:
    """`host:5000/team/app:1.2` -> ("host:5000", "team/app", "1.2"); a digest replaces the tag.
    The first segment is a registry host when it has a dot or a port or is `localhost` (Docker's rule)."""
    name, at, digest = reference.partition("@")
    first, slash, rest = name.partition("/")
    host = first if slash and ("." in first or ":" in first or first == "localhost") else None
    path = rest if host else name
    repository, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    return host, repository, digest if at else tag


@dataclass
class ImageSource:
    reference: str
    archive: Path
    kind: str
    """`engine`, `registry` or `archive`."""
    digest: str | None = None
    """Registry manifest digest when known (what a deployment pulls)."""
    _engine: object | None = field(default=None, repr=False)

    def discard(self, registry: RegistryClient) -> list[str]:
        """Remove the image everywhere the gate got it from; returns what was removed. A step that
        fails is reported, not hidden: the caller puts it in the audit record and the output."""
        removed: list[str] = []
        if self.kind in ("engine", "registry") and self._engine is not None:
            try:
                self._engine.images.remove(self.reference, force=True)
                removed.append(f"engine:{self.reference}")
            except Exception as exc:  # docker.errors.* or a dropped connection
                removed.append(f"engine:{self.reference} NOT removed ({exc.__class__.__name__}: {str(exc)[:200]})")
        if self.kind == "registry":
            host, repository, tag = split_reference(self.reference)
            try:
                digest = registry.delete_manifest(host or "docker.io", repository, self.digest or tag)
                removed.append(f"registry:{host}/{repository}@{digest}")
            except GateError as exc:
                removed.append(f"registry:{host}/{repository} NOT removed ({exc})")
        if self.kind == "archive":
            try:
                shutil.rmtree(
                    self.archive
                ) if self.archive.is_dir() else self.archive.unlink()  # an OCI layout is a folder
                removed.append(f"archive:{self.archive}")
            except OSError as exc:
                removed.append(f"archive:{self.archive} NOT removed ({exc.strerror})")
        return removed


def _engine():
    import docker  # the Docker SDK; imported here so archive scans need no engine

    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT)
        client.ping()
    except Exception as exc:  # DockerException, connection errors
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise GateError(
            f"Docker engine unreachable at {where} ({exc.__class__.__name__}): start it or set DOCKER_HOST"
        ) from None
    return client


def _pull(client, name: str, tag: str) -> str:
    """Pull `name:tag` (or `name@digest`) and return the manifest digest the engine reports."""
    digest = None
    for event in client.api.pull(name, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise GateError(f"cannot get {name}:{tag} from the registry: {str(event['error'])[:300]}")
        status = str(event.get("status", ""))
        if status.startswith("Digest: "):
            digest = status.removeprefix("Digest: ").strip()
    if digest is None or not digest.startswith("sha256:"):
        raise GateError(
            f"the Docker engine pulled {name}:{tag} without saying which manifest digest it got: the gate cannot "
            "name what it judged; pull again"
        )
    return digest


def from_engine(reference: str, workdir: Path) -> ImageSource:
    """A local image; a reference naming a registry host is pulled first, so the gate judges what
    the registry holds (and can delete it there)."""
    import docker

    client = _engine()
    host, repository, tag = split_reference(reference)
    kind = "registry" if host else "engine"
    digest = None
    try:
        if host:
            # Judge, record and discard the manifest the engine pulled, not the tag asked again: a
            # tag that moved in between would name another image in the audit record.
            digest = _pull(client, f"{host}/{repository}", tag)
            image = client.images.get(f"{host}/{repository}@{digest}")
        else:
            image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise GateError(
            f"no image {reference} in the Docker engine: build it first, or give --input image.tar"
        ) from None
    except docker.errors.APIError as exc:
        raise GateError(
            f"cannot get {reference} from {'the registry' if host else 'the engine'}: {exc.explanation or exc}"
        ) from None
    archive = workdir / "image.tar"
    try:
        with open(archive, "wb") as handle:
            for chunk in image.save(named=True):
                handle.write(chunk)
    except (docker.errors.APIError, OSError) as exc:
        raise GateError(
            f"cannot export {reference} from the engine ({exc.__class__.__name__}): {str(exc)[:200]}"
        ) from None
    return ImageSource(reference, archive, kind, digest, client)
