"""The curated index as HTTP: formats, refusals with reasons, no leaks, live allowlist edits."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import httpx
import pytest

from testkit.worlds import quarantined

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def page(world, project, env="prod", accept=JSON_V1):
    return httpx.get(f"{world.index(env)}{project}/", headers={"Accept": accept})


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (JSON_V1, JSON_V1),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        ("text/html", "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        (f"{JSON_V1};q=0.5, application/vnd.pypi.simple.v1+html;q=0.9", "application/vnd.pypi.simple.v1+html"),
    ],
)
def test_pep691_content_negotiation(pypi_world, accept, media):
    response = page(pypi_world, "alpha", accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media
    assert response.headers["vary"] == "Accept"


def test_json_page_lists_allowed_files_with_hashes_and_attributes(pypi_world):
    files = {f["filename"]: f for f in page(pypi_world, "epsilon").json()["files"]}
    assert set(files) == {"epsilon-1.0-py3-none-any.whl", "epsilon-1.1-py3-none-any.whl"}
    upstream_bytes = pypi_world.upstream.file_bytes("epsilon-1.1-py3-none-any.whl")
    assert files["epsilon-1.1-py3-none-any.whl"]["hashes"] == {"sha256": hashlib.sha256(upstream_bytes).hexdigest()}
    assert files["epsilon-1.1-py3-none-any.whl"]["yanked"] == "broken build"
    assert "yanked" not in files["epsilon-1.0-py3-none-any.whl"]
    # PEP 700 from the upstream's own page; no PEP 658 metadata, as this upstream serves none
    assert files["epsilon-1.1-py3-none-any.whl"]["size"] == len(upstream_bytes)
    assert files["epsilon-1.1-py3-none-any.whl"]["upload-time"] == "2026-01-15T10:00:00.000000Z"
    assert "core-metadata" not in files["epsilon-1.0-py3-none-any.whl"]
    assert page(pypi_world, "epsilon").json()["versions"] == ["1.0", "1.1"]
    oldpy = {f["filename"]: f for f in page(pypi_world, "oldpy").json()["files"]}
    assert oldpy["oldpy-1.0-py3-none-any.whl"]["requires-python"] == "<3"


def test_html_page_keeps_pep503_attributes(pypi_world):
    body = page(pypi_world, "epsilon", accept="text/html").text
    assert 'data-yanked="broken build"' in body
    assert "data-core-metadata" not in body  # this upstream serves no metadata: none is advertised
    assert '<meta name="pypi:repository-version" content="1.4">' in body
    assert "#sha256=" in body
    assert 'data-requires-python="&lt;3"' in page(pypi_world, "oldpy", accept="text/html").text


def test_only_allowed_parseable_matching_files_are_listed(pypi_world):
    response = page(pypi_world, "alpha")
    names = sorted(f["filename"] for f in response.json()["files"])
    # 1.0 is denied, 2.0 and 2.1rc1 are outside prod's range, the unparseable file is dropped, and
    # evil-9.9 (on alpha's page upstream; devpi keeps it from a JSON page) is another project's file
    assert names == ["alpha-1.1-py3-none-any.whl", "alpha-1.1.tar.gz"]
    assert response.headers["X-Airlock-Withheld"] == "5"
    preprod = sorted(f["filename"] for f in page(pypi_world, "alpha", env="preprod").json()["files"])
    assert "alpha-2.1rc1-py3-none-any.whl" in preprod and "alpha-1.0-py3-none-any.whl" not in preprod


def test_odd_filename_spellings_belong_to_the_normalised_project(pypi_world):
    names = sorted(f["filename"] for f in page(pypi_world, "zeta-pkg").json()["files"])
    assert names == ["ZETA_pkg-1.0-py3-none-any.whl", "Zeta.Pkg-1.0.tar.gz"]


def test_simple_root_lists_the_environments_projects(pypi_world):
    prod = httpx.get(pypi_world.index("prod"), headers={"Accept": JSON_V1}).json()
    names = [p["name"] for p in prod["projects"]]
    assert names == sorted(names)
    assert {"alpha", "beta", "zeta-pkg"} <= set(names)
    assert "delta" not in names


def test_non_normalised_urls_redirect(pypi_world):
    response = httpx.get(f"{pypi_world.index('prod')}Zeta.Pkg/")
    assert (response.status_code, response.headers["location"]) == (301, "../zeta-pkg/")
    response = httpx.get(f"{pypi_world.index('prod')}alpha")
    assert (response.status_code, response.headers["location"]) == (301, "alpha/")


def test_unknown_environment_names_the_known_ones(pypi_world):
    response = httpx.get(f"{pypi_world.url}/pypi/staging/simple/alpha/")
    assert response.status_code == 404
    assert "unknown environment 'staging'; known environments: prod, preprod" in response.text
    assert response.headers["X-Airlock-Reason"].startswith("unknown environment 'staging'")


def test_denied_version_and_metadata_follow_the_files_decision(pypi_world):
    preprod_files = page(pypi_world, "alpha", env="preprod").json()["files"]
    relpaths = {f["filename"]: f["url"].split("/files/", 1)[1] for f in preprod_files}
    allowed = httpx.get(f"{pypi_world.url}/pypi/prod/files/{relpaths['alpha-1.1-py3-none-any.whl']}.metadata")
    assert allowed.status_code == 404  # this upstream serves no metadata, and the page advertises none
    assert (
        allowed.headers["X-Airlock-Reason"]
        == "no metadata is served for alpha-1.1-py3-none-any.whl: read it from the file"
    )
    for denied in ("alpha-2.0-py3-none-any.whl", "alpha-2.1rc1-py3-none-any.whl"):
        for suffix in ("", ".metadata"):
            response = httpx.get(f"{pypi_world.url}/pypi/prod/files/{relpaths[denied]}{suffix}")
            assert response.status_code == 404
            assert response.headers["X-Airlock-Reason"].startswith("blocked: alpha 2.")


def _forbidden(world) -> dict[str, bytes]:
    """Bytes of every file prod must never serve."""
    names = [
        "alpha-2.0-py3-none-any.whl",
        "delta-1.0-py3-none-any.whl",
        "alpha-1.0.1-py3-none-any.whl",
        "evil-9.9-py3-none-any.whl",
        "alpha-1.0-py3-none-any.whl",
        "alpha-2.1rc1-py3-none-any.whl",
        "alpha-notaversion-py3-none-any.whl",
    ]
    return {name: world.upstream.file_bytes(name) for name in names}


def test_no_byte_of_a_non_allowlisted_file_leaks_through_any_route(pypi_world):
    devpi = pypi_world.devpi_url()
    # Make devpi fetch every page, so that every file has a devpi path someone could guess.
    relpaths: dict[str, str] = {}
    for project in ("alpha", "delta", "evil", "gamma"):
        listing = httpx.get(f"{devpi}/root/upstream/+simple/{project}/", headers={"Accept": JSON_V1})
        for item in listing.json().get("files", []) if listing.status_code == 200 else []:
            relpaths[item["filename"]] = item["url"].split("+f/", 1)[1]
    assert "delta-1.0-py3-none-any.whl" in relpaths and "alpha-2.0-py3-none-any.whl" in relpaths
    forbidden = _forbidden(pypi_world)
    base = pypi_world.url
    urls = []
    for filename, relpath in relpaths.items():
        for project in ("alpha", "delta", "evil", "Alpha", "ALPHA", "zeta-pkg"):
            for suffix in ("", ".metadata"):
                urls.append(f"{base}/pypi/prod/files/{project}/{relpath}{suffix}")
        urls += [
            f"{base}/root/upstream/+f/{relpath}",
            f"{base}/+f/{relpath}",
            f"{base}/pypi/prod/+f/{relpath}",
            f"{base}/pypi/prod/files/alpha/../../root/upstream/+f/{relpath}",
            f"{base}/pypi/prod/files/alpha/..%2F..%2Froot%2Fupstream%2F%2Bf%2F{relpath}",
            f"{base}/pypi/prod/files/alpha//{relpath}",
            f"{base}/pypi/prod/files//{relpath}",
            f"{base}/pypi/prod/files/alpha/{relpath.upper()}",
            f"{base}/pypi/prod/simple/alpha/../../files/alpha/{relpath}",
            f"{base}/pypi/preprod/files/delta/{relpath}",
        ]
    urls += [
        f"{base}/{path}"
        for path in (
            "root/upstream/+simple/delta/",
            "root/upstream/",
            "+simple/delta/",
            "+api",
            "+login",
            "root/",
            "+status",
            "pypi/prod/simple/delta/",
            "pypi/prod/simple/../../root/upstream/+simple/delta/",
            "pypi/prod/simple/%2e%2e/delta/",
            "pypi/prod/+simple/delta/",
            "pypi/prod/simple/delta/index.html",
            "pypi/prod/simple/delta/../delta/",
        )
    ]
    leaks = []
    with httpx.Client(follow_redirects=True) as client:
        for url in urls:
            for method in ("GET", "HEAD", "POST", "PUT"):
                response = client.request(method, url)
                for name, data in forbidden.items():
                    if (
                        data in response.content
                        or hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()
                    ):
                        leaks.append((method, url, name))
                if response.status_code == 200 and method == "GET" and "/files/" in url:
                    assert response.content not in forbidden.values(), url
    assert len(urls) > 100
    assert leaks == []


def test_devpi_is_not_reachable_through_the_public_port(pypi_world):
    for path in ("/root/upstream/+simple/alpha/", "/+api", "/+login", "/root/upstream", "/+status", "/root/"):
        response = httpx.get(pypi_world.url + path)
        assert response.status_code == 404, path
        assert "devpi" not in response.text.lower() or "pip/uv" in response.text
    upload = httpx.post(f"{pypi_world.url}/pypi/prod/simple/", content=b":action=file_upload")
    assert upload.status_code in (404, 405)


def test_an_allowlist_edit_is_enforced_within_two_seconds(pypi_world):
    from testkit.worlds import ALLOWLIST

    assert quarantined(page(pypi_world, "delta"))
    pypi_world.write_allowlist(
        ALLOWLIST + "  - {name: delta, environments: [prod], reason: approved in review, owner: ml}\n"
    )
    try:
        started = time.monotonic()
        while quarantined(page(pypi_world, "delta")):
            assert time.monotonic() - started < 2.0, "the edit was not enforced within 2 s"
            time.sleep(0.05)
        pypi_world.write_allowlist(ALLOWLIST.replace("{name: beta,", "{name: beta, versions: '>=5',"))
        started = time.monotonic()
        while not quarantined(page(pypi_world, "delta")) or page(pypi_world, "beta").json()["files"]:
            assert time.monotonic() - started < 2.0, "the removal was not enforced within 2 s"
            time.sleep(0.05)
        # An invalid edit changes nothing: the previous allowlist stays in force.
        pypi_world.write_allowlist(ALLOWLIST + "  - {name: delta, environments: [staging], reason: r, owner: o}\n")
        time.sleep(1.2)
        ready = httpx.get(f"{pypi_world.url}/readyz").json()
        assert (
            ready["allowlist"]["rejected_edit"]
            and "unknown environment 'staging'" in ready["allowlist"]["rejected_edit"][0]
        )
        assert quarantined(page(pypi_world, "delta"))
    finally:
        pypi_world.write_allowlist(ALLOWLIST)
        time.sleep(1.2)
    assert page(pypi_world, "beta").json()["files"]


def test_status_prints_client_settings_and_health(pypi_world):
    env = {
        "AIRLOCK_LISTEN": pypi_world.airlock.env.get("AIRLOCK_LISTEN", f"127.0.0.1:{pypi_world.airlock.port}"),
        "AIRLOCK_ALLOWLISTS": str(pypi_world.allowlists),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "mirror", "status", "--json"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["ready"] is True and status["parts"]["devpi"]["healthy"] is True
    assert [c["environment"] for c in status["clients"]] == ["prod", "preprod"]
    assert f"--index-url {pypi_world.url}/pypi/prod/simple/" in status["clients"][0]["pip"]
    text = subprocess.run([sys.executable, "-m", "mirror", "status"], capture_output=True, text=True, env=env)
    assert text.stdout.startswith(f"Airlock at {pypi_world.url}: ready")
    down = subprocess.run(
        [sys.executable, "-m", "mirror", "status"],
        capture_output=True,
        text=True,
        env={**env, "AIRLOCK_LISTEN": "127.0.0.1:9"},
    )
    assert down.returncode == 1 and "does not answer on 127.0.0.1:9" in down.stdout
