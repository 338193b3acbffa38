"""The conda packages of an image, read from its `conda-meta/*.json` records.

Trivy 0.76 lists conda packages only from `…/envs/NAME/conda-meta/` (its analyzer's pattern), so
everything installed into a base prefix (`/opt/conda`, micromamba's root, any `conda create -p`
prefix) would pass the provenance check unseen; and it drops the build string, which a MatchSpec
such as `pytorch >=2.3 *cuda*` constrains. The gate therefore reads every record itself.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from gate.errors import GateError
from gate.interface import Package
from gate.scanner.layers import final_files


def is_conda_record(path: str) -> bool:
    """`PREFIX/conda-meta/NAME-VERSION-BUILD.json` (not `history`, `pinned` or the like)."""
    folder, _, name = path.rpartition("/")
    return name.endswith(".json") and (folder == "conda-meta" or folder.endswith("/conda-meta"))


def is_conda_meta_folder(path: str) -> bool:
    """A prefix's `conda-meta` folder: a symbolic link there would hide its records from the gate."""
    return path == "conda-meta" or path.endswith("/conda-meta")


_PYTHON_METADATA = (".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info")
"""The files by which Trivy finds a Python package (its packaging analyzer's patterns)."""


class CondaRecords(NamedTuple):
    packages: list[Package]
    python_metadata: dict[str, Package]
    """Path of Python metadata a conda package installed (numpy's dist-info) -> that package."""


def conda_packages(image: Path) -> CondaRecords:
    packages, owned = [], {}
    for path, (layer, content) in sorted(final_files(image, is_conda_record, is_conda_meta_folder).items()):
        try:
            record = json.loads(content)
            name, version, build = record["name"], record["version"], record.get("build")
            files = [str(file) for file in record.get("files") or () if str(file).endswith(_PYTHON_METADATA)]
        except (ValueError, KeyError, TypeError):
            raise GateError(
                f"the conda record /{path} in the image is not a package record (name, version): "
                "nothing installed there can be vetted; rebuild the image"
            ) from None
        licence = record.get("license") if isinstance(record.get("license"), str) else None
        package = Package(
            "conda", str(name), str(version), path, layer, str(build) if build else None, licence=licence or None
        )
        packages.append(package)
        prefix = path.rpartition("/conda-meta/")[0]
        owned.update((f"{prefix}/{file}" if prefix else file, package) for file in files)
    return CondaRecords(packages, owned)


def with_conda_records(trivy_packages: tuple[Package, ...], records: CondaRecords) -> tuple[Package, ...]:
    """Trivy's packages, its conda ones replaced by the records (a superset of them, with builds),
    and the Python ones a conda package installed marked with it."""
    kept = []
    for package in trivy_packages:
        if package.kind == "conda":
            continue
        owner = records.python_metadata.get(package.path)
        if owner is not None:
            package = replace(
                package, installed_by=f"conda package {owner.name} {owner.version} {owner.build or ''}".rstrip()
            )
        kept.append(package)
    return tuple(kept) + tuple(records.packages)


def add_to_sbom(sbom: Path, records: CondaRecords, trivy_packages: tuple[Package, ...]) -> None:
    """Put the records Trivy did not list into its CycloneDX SBOM, so that it names every package
    the gate judged."""
    listed = {package.path for package in trivy_packages if package.kind == "conda"}
    missing = [record for record in records.packages if record.path not in listed]
    if not missing:
        return
    document = json.loads(sbom.read_bytes())
    for record in missing:
        purl = f"pkg:conda/{record.name}@{record.version}" + (f"?build={record.build}" if record.build else "")
        document.setdefault("components", []).append(
            {
                "bom-ref": f"{purl}#/{record.path}",
                "type": "library",
                "name": record.name,
                "version": record.version,
                "purl": purl,
                "properties": [
                    {"name": "airlock:path", "value": f"/{record.path}"},
                    {"name": "airlock:layer", "value": record.layer or ""},
                ],
            }
        )
    sbom.write_text(json.dumps(document, indent=2) + "\n")
