"""The gate's own reading of image layers (for the conda records Trivy does not list): the top
layer's view, whiteouts applied, long names, docker-archives and OCI layouts, plain or gzip."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from gate.archive import scannable
from gate.errors import GateError
from gate.scanner.conda_meta import conda_packages, is_conda_record
from gate.scanner.layers import final_files
from testkit.images import diff_id_of, docker_archive, layer_tar, oci_archive

LONG_PREFIX = "opt/" + "very-long-environment-folder-name/" * 4 + "env"


def _record(name: str, build: str = "0") -> bytes:
    return json.dumps({"name": name, "version": "1.0", "build": build}).encode()


LAYERS = [
    layer_tar(
        [
            ("opt/conda/conda-meta", None),
            ("opt/conda/conda-meta/a-1.0-0.json", _record("a")),
            ("opt/conda/conda-meta/b-1.0-0.json", _record("b")),
            ("opt/conda/conda-meta/history", b"==> 2026 <==\n"),
            ("opt/other/conda-meta/c-1.0-0.json", _record("c")),
        ]
    ),
    layer_tar(
        [
            ("opt/conda/conda-meta", None),
            ("opt/conda/conda-meta/.wh.a-1.0-0.json", b""),
            ("opt/conda/conda-meta/b-1.0-0.json", _record("b", "1")),
            (f"{LONG_PREFIX}/conda-meta/long-1.0-0.json", _record("long")),
        ],
        tar_format=tarfile.GNU_FORMAT,
    ),
    layer_tar(
        [
            ("opt/other/conda-meta/.wh..wh..opq", b""),
            ("opt/other/conda-meta/d-1.0-0.json", _record("d")),
            (f"{LONG_PREFIX}-pax/conda-meta/pax-1.0-0.json", _record("pax")),
        ]
    ),  # a PAX header names it
]
EXPECTED = {
    "opt/conda/conda-meta/b-1.0-0.json": (1, _record("b", "1")),
    f"{LONG_PREFIX}/conda-meta/long-1.0-0.json": (1, _record("long")),
    "opt/other/conda-meta/d-1.0-0.json": (2, _record("d")),
    f"{LONG_PREFIX}-pax/conda-meta/pax-1.0-0.json": (2, _record("pax")),
}


def _seen(image: Path) -> dict[str, tuple[int, bytes]]:
    ids = [diff_id_of(layer) for layer in LAYERS]
    return {
        path: (ids.index(diff_id), content) for path, (diff_id, content) in final_files(image, is_conda_record).items()
    }


def test_the_top_layer_decides_what_is_there(tmp_path):
    assert _seen(docker_archive(tmp_path / "image.tar", LAYERS)) == EXPECTED


@pytest.mark.parametrize("compress", [False, True], ids=["plain-layers", "gzip-layers"])
def test_oci_layouts_read_the_same(tmp_path, compress):
    archive = oci_archive(docker_archive(tmp_path / "image.tar", LAYERS), tmp_path / "oci.tar")
    layout = scannable(archive, tmp_path)
    if (
        compress
    ):  # as buildx writes them (the blob names stay: the gate reads layers by diff id order, Trivy checks digests)
        for blob in (layout / "blobs" / "sha256").iterdir():
            if blob.read_bytes() in LAYERS:
                blob.write_bytes(gzip.compress(blob.read_bytes()))
    assert _seen(layout) == EXPECTED


def test_conda_packages_carry_their_build_andlayer_tar(tmp_path):
    packages = {
        p.name: (p.version, p.build, p.path)
        for p in conda_packages(docker_archive(tmp_path / "image.tar", LAYERS)).packages
    }
    assert packages == {
        "b": ("1.0", "1", "opt/conda/conda-meta/b-1.0-0.json"),
        "d": ("1.0", "0", "opt/other/conda-meta/d-1.0-0.json"),
        "long": ("1.0", "0", f"{LONG_PREFIX}/conda-meta/long-1.0-0.json"),
        "pax": ("1.0", "0", f"{LONG_PREFIX}-pax/conda-meta/pax-1.0-0.json"),
    }


def test_a_record_that_is_not_a_package_cannot_be_vetted(tmp_path):
    image = docker_archive(tmp_path / "image.tar", [layer_tar([("opt/conda/conda-meta/x-1-0.json", b"{not json")])])
    with pytest.raises(
        GateError, match=r"the conda record /opt/conda/conda-meta/x-1-0.json in the image is not a package record"
    ):
        conda_packages(image)
