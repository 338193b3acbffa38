"""The gate's layer reader against constructs that hid conda packages from it, although Docker
extracts them into the image: hard links, symbolic links, PAX sizes, huge members, hostile OCI
layouts. Each is followed as Docker follows it, or the gate cannot decide (exit 2)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from gate.errors import GateError
from gate.scanner.conda_meta import conda_packages
from testkit.images import docker_archive, layer_tar, oci_archive
from tests.gate_world import gate, last_audit

RECORD = json.dumps({"name": "hidden", "version": "1.0", "build": "0"}).encode()
META = "opt/conda/conda-meta/hidden-1.0-0.json"


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for info, content in members:
            layer.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _file(path: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(path)
    info.size = len(content)
    return info, content


def _link(path: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(path)
    info.type, info.linkname = kind, target
    return info, None


def _names(image) -> set[str]:
    return {package.name for package in conda_packages(image).packages}


def test_a_record_stored_as_a_hard_link_is_read_from_its_target(tmp_path):
    layer = _tar(_file("opt/store/blob", RECORD), _link(META, "opt/store/blob", tarfile.LNKTYPE))
    with tarfile.open(fileobj=io.BytesIO(layer)) as extracted:  # what an extractor makes of it
        assert extracted.extractfile(META).read() == RECORD
    assert _names(docker_archive(tmp_path / "image.tar", [layer])) == {"hidden"}


@pytest.mark.parametrize(
    ("link", "named"),
    [
        (("opt/conda/conda-meta", "../stash", tarfile.SYMTYPE), "/opt/conda/conda-meta is a symbolic link to ../stash"),
        ((META, "/opt/stash/r.json", tarfile.SYMTYPE), f"/{META} is a symbolic link to /opt/stash/r.json"),
    ],
    ids=["linked-folder", "linked-record"],
)
def test_a_symbolic_link_where_records_are_cannot_be_vetted(tmp_path, link, named):
    layer = _tar(_file("opt/stash/hidden-1.0-0.json", RECORD), _file("opt/stash/r.json", RECORD), _link(*link))
    with pytest.raises(GateError, match=named.replace(".", r"\.")):
        conda_packages(docker_archive(tmp_path / "image.tar", [layer]))


def test_a_linked_folder_replaced_by_a_real_one_is_fine(tmp_path):
    lower = _tar(_link("opt/conda/conda-meta", "../stash", tarfile.SYMTYPE))
    upper = layer_tar([("opt/conda/conda-meta", None), (META, RECORD)])
    assert _names(docker_archive(tmp_path / "image.tar", [lower, upper])) == {"hidden"}


def test_a_pax_size_overrides_the_header_size_as_docker_reads_it(tmp_path):
    inner = _tar(_file(META, RECORD))
    inner = inner[: len(inner) - 1024]  # the record's header and data, without the end-of-archive blocks
    pad = tarfile.TarInfo("opt/pad")
    pad.size, pad.pax_headers = len(inner), {"size": "0"}  # ustar says len(inner); PAX, which wins, says 0
    layer = _tar((pad, inner))
    with tarfile.open(fileobj=io.BytesIO(layer)) as extracted:  # Python's tar (as Go's) honours the PAX size
        assert META in extracted.getnames()
    assert _names(docker_archive(tmp_path / "image.tar", [layer])) == {"hidden"}


def test_a_huge_record_is_refused_not_read_into_memory(gate_world, tmp_path):
    bomb = b'{"name": "x", "version": "1", "pad": "' + b" " * (80 << 20) + b'"}'
    layer = gzip.compress(layer_tar([(META, bomb)]), compresslevel=1)
    archive = docker_archive(tmp_path / "bomb.tar", [layer])
    assert archive.stat().st_size < 1 << 20
    result = gate(gate_world, "--input", str(archive), "--env", "prod")
    assert result.returncode == 2, result.stderr
    assert f"/{META} is {len(bomb)} bytes, over the 64 MiB a package record can be" in result.stderr
    assert last_audit(gate_world)["details"]["decision"] == "undecided"


def test_an_oci_layout_blob_outside_the_layout_is_not_opened(gate_world, tmp_path):
    secret = tmp_path / "outside.json"
    secret.write_text('{"schemaVersion": 2}')
    given = oci_archive(docker_archive(tmp_path / "image.tar", [layer_tar([(META, RECORD)])]), tmp_path / "oci.tar")
    with tarfile.open(given) as archive:
        archive.extractall(tmp_path / "layout", filter="data")
    index = tmp_path / "layout" / "index.json"
    document = json.loads(index.read_text())
    document["manifests"][0]["digest"] = "sha256:../../../outside.json"
    index.write_text(json.dumps(document))
    with pytest.raises(GateError, match=r"names a blob 'sha256:\.\./\.\./\.\./outside\.json' that is not a sha256"):
        conda_packages(tmp_path / "layout")
