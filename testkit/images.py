"""Solution images as the gate sees them, built with the real engine and nothing pulled.

Python packages are laid out as pip installs them (`NAME-VERSION.dist-info` with METADATA, RECORD,
INSTALLER, WHEEL, plus the module); secrets are files a careless build would copy in.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

from testkit.docker import DockerEngine

SITE = "/usr/local/lib/python3.11/site-packages"


def dist_info(root: Path, name: str, version: str, licence: str | None = None) -> None:
    """Write one installed distribution under `root` (a site-packages folder)."""
    module = name.replace("-", "_").lower()
    info = root / f"{module}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (root / module).mkdir(exist_ok=True)
    (root / module / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test package {name}\n"
        + (f"License: {licence}\n" if licence else "")
    )
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


def build_image(
    engine: DockerEngine,
    tag: str,
    context: Path,
    packages: list[tuple[str, str]] = (),
    files: dict[str, str] | None = None,
    base: str | None = None,
) -> str:
    """An image FROM `base` (default scratch + static busybox) adding packages, then files, each
    in its own layer; returns the tag."""
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)
    lines = [f"FROM {base}" if base else "FROM scratch"]
    if base is None:
        shutil.copy("/usr/bin/busybox", context / "busybox")
        lines.append("COPY busybox /bin/busybox")
    if packages:
        for name, version, *licence in packages:  # (name, version) or (name, version, licence)
            dist_info(context / "site", name, version, *licence)
        lines.append(f"COPY site {SITE}/")
    for number, (path, text) in enumerate((files or {}).items()):
        (context / f"file{number}").write_text(text)
        lines.append(f"COPY file{number} {path}")
    lines.append('CMD ["/bin/busybox", "sh"]')
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    engine.docker("build", "-q", "-t", tag, str(context))
    return tag


def oci_archive(docker_archive: Path, out: Path) -> Path:
    """The same image as an OCI archive (what `docker buildx --output type=oci` and `podman save
    --format oci-archive` write): oci-layout, index.json and blobs/sha256/*, no manifest.json."""
    with tarfile.open(docker_archive) as archive:
        [saved] = json.load(archive.extractfile("manifest.json"))
        config = archive.extractfile(saved["Config"]).read()
        layers = [archive.extractfile(name).read() for name in saved["Layers"]]

    def descriptor(media_type: str, blob: bytes) -> dict:
        return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
        }
    ).encode()
    index = json.dumps(
        {"schemaVersion": 2, "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", manifest)]}
    ).encode()
    with tarfile.open(out, "w") as archive:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
            *((f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob) for blob in (config, manifest, *layers)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out


def osv(advisory_id: str, package: str, fixed: str, severity: str, cve: str | None = None, summary: str = "") -> dict:
    return {
        "id": advisory_id,
        "aliases": [cve] if cve else [],
        "summary": summary or f"{package} before {fixed} is vulnerable",
        "details": f"Upgrade {package} to {fixed}.",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
        "database_specific": {"severity": severity},
        "references": [{"type": "ADVISORY", "url": f"https://osv.dev/vulnerability/{advisory_id}"}],
    }


# Realistic-looking, never valid: shaped so Trivy's built-in rules recognise them.
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo\n"
    "-----END RSA PRIVATE KEY-----\n"
)
CLOUD_TOKENS = (
    'AWS_ACCESS_KEY_ID = "AKIAZ3MSJV4WRSZWQFVG"\n'
    'AWS_SECRET_ACCESS_KEY = "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"\n'
    'GITHUB_TOKEN = "ghp_R8sJq2LmV5wX1tY7uZ3aB9cD4eF6gH0iK2Lm"\n'
)


def layer_tar(entries: list[tuple[str, bytes | None]], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    """A layer tar: (path, content) adds a file, (path, None) a folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as layer:
        for path, content in entries:
            info = tarfile.TarInfo(path)
            if content is None:
                info.type = tarfile.DIRTYPE
                layer.addfile(info)
            else:
                info.size = len(content)
                layer.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def diff_id_of(layer: bytes) -> str:
    return f"sha256:{hashlib.sha256(layer).hexdigest()}"


def docker_archive(path: Path, layers: list[bytes]) -> Path:
    """A `docker save` archive of the given layer tars (what `--input` takes)."""
    config = json.dumps(
        {"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id_of(layer) for layer in layers]}}
    ).encode()
    members = [
        ("config.json", config),
        *((f"{n}/layer.tar", layer) for n, layer in enumerate(layers)),
        (
            "manifest.json",
            json.dumps([{"Config": "config.json", "Layers": [f"{n}/layer.tar" for n in range(len(layers))]}]).encode(),
        ),
    ]
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
