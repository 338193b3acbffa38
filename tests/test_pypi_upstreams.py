"""Upstreams as they really are: PEP 658 metadata for all, some or none of the wheels, pages with PEP
700 fields or HTML only, a slow project list, a page that hangs, hashes that lie, hostile pages.
Real pip and uv install through Airlock against each; nothing from the upstream reaches a page
unchecked or unescaped."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile

import httpx
import pytest

from testkit.pypi import Release, Upstream
from testkit.servers import AirlockProcess, PypiIndexServer
from testkit.worlds import UPSTREAM_INDEX_DELAY, fresh_venv, installed, pip, uv

JSON_V1 = "application/vnd.pypi.simple.v1+json"
PROJECTS = (
    "metaall",
    "metasome",
    "metanone",
    "liarmeta",
    "liarfile",
    "htmlonly",
    "timed",
    "slowpage",
    "hostile",
    "nosuchproject",
)
ALLOWLIST = "ecosystem: pypi\nenvironments: {prod: {}}\npackages:\n" + "".join(
    f"  - {{name: {name}, environments: [prod], reason: upstream quirks, owner: ml}}\n" for name in PROJECTS
)


def releases() -> list[Release]:
    return [
        *(Release("metaall", version, requires=("metanone",)) for version in ("1.0", "1.1")),
        *(Release("metasome", version, metadata=version == "1.0") for version in ("1.0", "1.1")),
        Release("metasome", "1.1", kind="sdist"),
        *(Release("metanone", version, metadata=False) for version in ("1.0", "2.0")),
        Release("liarmeta", "1.0", lie="metadata-hash"),
        Release("liarfile", "1.0", lie="hash", metadata=False),
        Release("htmlonly", "1.0", metadata=False),
        Release("htmlonly", "1.1", metadata=False, yanked="broken"),
        Release("timed", "1.0", metadata=False, upload_time="2025-01-01T00:00:00Z"),
        Release("timed", "2.0", metadata=False, upload_time="2026-06-01T00:00:00.123456Z"),
        Release("slowpage", "1.0"),
        *(Release("hostile", f"1.{n}", metadata=False) for n in range(5)),
    ]


def hostile_page(upstream: Upstream) -> bytes:
    """The upstream's JSON page for `hostile`, each file broken another way but 1.0."""
    page = json.loads((upstream.root / "simple" / "hostile" / "index.json").read_text())
    files = {f["filename"].split("-")[1]: f for f in page["files"]}
    files["1.1"]["hashes"] = {"sha256": '<script>alert("hash")</script>'}
    files["1.2"]["upload-time"] = "yesterday at noon"
    files["1.3"]["size"] = 10**15
    files["1.4"]["requires-python"] = '"><script>alert(1)</script>'
    return json.dumps(page).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upstreams")
    upstream = Upstream(
        tmp / "upstream", index_delay=UPSTREAM_INDEX_DELAY, html_only={"htmlonly"}, page_delays={"slowpage": 8}
    )
    upstream.add(*releases())
    upstream.publish()
    upstream.raw_pages = {
        "hostile": ("application/vnd.pypi.simple.v1+json", hostile_page(upstream)),
        "brokenjson": ("application/vnd.pypi.simple.v1+json", b'{"meta": {"api-version": "1.1"}, "files": ['),
    }
    upstream.publish()
    server = PypiIndexServer(upstream.root).start()
    allowlists = tmp / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(
        ALLOWLIST + "  - {name: brokenjson, environments: [prod], reason: r, owner: o}\n"
    )
    airlock = AirlockProcess(
        tmp / "airlock",
        {
            "AIRLOCK_PYPI_UPSTREAM": f"{server.url}/simple/",
            "AIRLOCK_DATA_DIR": str(tmp / "data"),
            "AIRLOCK_ALLOWLISTS": str(allowlists),
            "AIRLOCK_UPSTREAM_TIMEOUT": "4",
        },
    )
    try:
        airlock.start()
    except BaseException:
        server.stop()
        raise
    yield {"airlock": airlock, "upstream": upstream, "server": server, "index": f"{airlock.url}/pypi/prod/simple/"}
    airlock.stop()
    server.stop()


def page(world, project: str, accept: str = JSON_V1) -> httpx.Response:
    return httpx.get(f"{world['index']}{project}/", headers={"Accept": accept}, timeout=60)


def files(world, project: str) -> dict[str, dict]:
    return {f["filename"]: f for f in page(world, project).json()["files"]}


def file_url(world, project: str, entry: dict) -> str:
    return f"{world['index']}{project}/{entry['url']}"


def wheel_metadata(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        [member] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(member)


def test_the_first_request_on_a_fresh_data_dir_finds_an_existing_project(world):
    # The upstream's project list takes longer than devpi's timeout: devpi must not wait for it.
    response = page(world, "metanone")
    assert response.status_code == 200, response.text
    assert sorted(response.json()["versions"]) == ["1.0", "2.0"]


def test_metadata_is_served_for_every_wheel_and_equals_its_METADATA(world):
    # AIRLOCK_PYPI_METADATA=extract (the default): the upstream's metadata where it serves it, with
    # its hash; Airlock's own reading of the wheel where it does not (by byte ranges, as uv would)
    for project in ("metaall", "metasome", "metanone"):
        for filename, entry in files(world, project).items():
            release = next(r for r in world["upstream"].releases if r.filename == filename)
            advertised = entry.get("core-metadata")
            metadata = httpx.get(file_url(world, project, entry) + ".metadata")
            if release.kind != "wheel":
                assert advertised is None and metadata.status_code == 404, filename
                continue
            assert metadata.status_code == 200, metadata.text
            assert metadata.content == wheel_metadata(world["upstream"].file_bytes(filename))
            digest = hashlib.sha256(metadata.content).hexdigest()
            assert advertised in (True, {"sha256": digest}), filename
            if release.metadata:
                assert advertised == {"sha256": digest}  # the upstream's hash, checked
            deadline = time.monotonic() + 5  # once read, the page gives its hash (after its 2 s reuse)
            while files(world, project)[filename]["core-metadata"] != {"sha256": digest}:
                assert time.monotonic() < deadline, filename
                time.sleep(0.2)
    html = page(world, "metasome", accept="text/html").text
    assert html.count('data-core-metadata="sha256=') == 2


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_clients_install_with_metadata_for_all_some_or_none_of_the_wheels(world, tmp_path, client):
    python = fresh_venv(tmp_path / "venv")
    wanted = ["metaall", "metasome", "htmlonly"]
    if client == "pip":
        result = pip(["--python", str(python), "install", "--index-url", world["index"], *wanted], tmp_path)
    else:
        result = uv(["pip", "install", "--python", str(python), "--index-url", world["index"], *wanted], tmp_path)
    assert result.returncode == 0, result.stderr
    assert installed(python) == {"metaall": "1.1", "metanone": "2.0", "metasome": "1.1", "htmlonly": "1.0"}


def test_metadata_whose_hash_lies_is_refused_never_served_and_no_longer_advertised(world, tmp_path):
    [entry] = files(world, "liarmeta").values()
    assert entry["core-metadata"]  # the upstream advertises it, with a hash its file does not have
    refused = httpx.get(file_url(world, "liarmeta", entry) + ".metadata")
    assert refused.status_code == 502
    assert refused.headers["X-Airlock-Reason"].startswith(
        "the metadata of liarmeta-1.0-py3-none-any.whl does not match the sha256 the upstream's page gives for it"
    )
    assert b"Metadata-Version" not in refused.content
    assert "core-metadata" not in files(world, "liarmeta")["liarmeta-1.0-py3-none-any.whl"]
    python = fresh_venv(tmp_path / "venv")
    result = uv(["pip", "install", "--python", str(python), "--index-url", world["index"], "liarmeta"], tmp_path)
    assert result.returncode == 0, result.stderr  # uv reads the wheel itself
    assert installed(python) == {"liarmeta": "1.0"}


def test_a_file_whose_hash_lies_is_never_served_whole(world, tmp_path):
    [entry] = files(world, "liarfile").values()
    with pytest.raises(httpx.RemoteProtocolError):  # cut short before the last bytes: never whole
        httpx.get(file_url(world, "liarfile", entry))
    assert "cut liarfile-1.0-py3-none-any.whl short: its sha256" in world["airlock"].log.read_text()
    python = fresh_venv(tmp_path / "venv")
    result = pip(["--python", str(python), "install", "--index-url", world["index"], "liarfile"], tmp_path)
    assert result.returncode != 0
    assert "liarfile" not in installed(python)


def test_pep700_fields_from_the_upstream_and_versions_only_of_allowed_files(world):
    answer = page(world, "timed").json()
    assert answer["meta"]["api-version"] == "1.4" and answer["versions"] == ["1.0", "2.0"]
    timed = {f["filename"]: f for f in answer["files"]}
    assert timed["timed-1.0-py3-none-any.whl"]["upload-time"] == "2025-01-01T00:00:00.000000Z"
    assert timed["timed-2.0-py3-none-any.whl"]["upload-time"] == "2026-06-01T00:00:00.123456Z"
    data = world["upstream"].file_bytes("timed-2.0-py3-none-any.whl")
    assert timed["timed-2.0-py3-none-any.whl"]["size"] == len(data)
    html_only = files(world, "htmlonly")  # a PEP 503 upstream: no size, no upload time, still served
    assert html_only["htmlonly-1.1-py3-none-any.whl"]["yanked"] == "broken"
    assert (
        "size" not in html_only["htmlonly-1.0-py3-none-any.whl"]
        and "upload-time" not in html_only["htmlonly-1.0-py3-none-any.whl"]
    )
    assert 'data-yanked="broken"' in page(world, "htmlonly", accept="text/html").text


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_cooldowns_of_pip_and_uv_work_through_airlock(world, tmp_path, client):
    python = fresh_venv(tmp_path / "venv")
    if client == "pip":
        result = pip(
            [
                "--python",
                str(python),
                "install",
                "--uploaded-prior-to",
                "2026-01-01T00:00:00Z",
                "--index-url",
                world["index"],
                "timed",
            ],
            tmp_path,
        )
    else:
        result = uv(
            [
                "pip",
                "install",
                "--python",
                str(python),
                "--exclude-newer",
                "2026-01-01T00:00:00Z",
                "--index-url",
                world["index"],
                "timed",
            ],
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert installed(python) == {"timed": "1.0"}


def test_an_allowed_project_the_upstream_lacks_is_a_404_that_says_so(world):
    response = page(world, "nosuchproject")
    assert response.status_code == 404
    assert (
        response.headers["X-Airlock-Reason"]
        == "nosuchproject is allowed for prod, but the upstream index has no project nosuchproject"
    )


def test_an_upstream_page_that_hangs_is_a_503_never_a_404(world):
    response = page(world, "slowpage")
    assert response.status_code == 503, response.text
    assert "try again when the upstream is reachable" in response.headers["X-Airlock-Reason"]


def test_byte_ranges_on_files_airlock_holds(world, tmp_path):
    [entry] = [e for name, e in files(world, "metanone").items() if name.endswith("2.0-py3-none-any.whl")]
    url = file_url(world, "metanone", entry)
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(whole.content))
    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole.content[-100:]
    assert (
        tail.headers["content-range"]
        == f"bytes {len(whole.content) - 100}-{len(whole.content) - 1}/{len(whole.content)}"
    )
    middle = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == whole.content[10:20]
    assert httpx.get(url, headers={"Range": f"bytes={len(whole.content) + 10}-"}).status_code == 416


def test_hostile_upstream_entries_are_withheld_and_nothing_reaches_a_page_unescaped(world):
    response = page(world, "hostile")
    assert response.status_code == 200
    assert (
        sorted(response.json()["files"], key=lambda f: f["filename"])[0]["filename"] == "hostile-1.0-py3-none-any.whl"
    )
    kept = {f["filename"]: f for f in response.json()["files"]}
    assert set(kept) == {"hostile-1.0-py3-none-any.whl", "hostile-1.4-py3-none-any.whl"}
    assert kept["hostile-1.4-py3-none-any.whl"]["requires-python"] == '"><script>alert(1)</script>'  # JSON: a string
    assert response.headers["X-Airlock-Withheld"] == "3"  # 1.1 (hash), 1.2 (time), 1.3 (size)
    html = page(world, "hostile", accept="text/html").text
    assert "<script" not in html and 'data-requires-python="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    log = world["airlock"].log.read_text()
    assert (
        "withholding 'hostile-1.2-py3-none-any.whl' of hostile: the upstream's entry is unusable: its upload-time 'yesterday at noon' is not ISO 8601"
        in log
    )
    assert (
        "withholding 'hostile-1.3-py3-none-any.whl' of hostile: the upstream's entry is unusable: its size 1000000000000000 is not a byte count"
        in log
    )


def test_a_malformed_upstream_page_is_withheld_with_its_reason(world):
    response = page(world, "brokenjson")
    assert response.status_code == 503
    reason = response.headers["X-Airlock-Reason"]
    assert "brokenjson" in reason and ("malformed" in reason or "cannot read" in reason or "not cached" in reason), (
        reason
    )
