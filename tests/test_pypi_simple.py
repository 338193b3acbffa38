"""The page filter and renderers on their own: parsed names, versions, negotiation, paths."""

from __future__ import annotations

import json

import pytest

from mirror.pypi.simple import (
    JSON_V1,
    TEXT_HTML,
    allowed_files,
    negotiate,
    parse_devpi_page,
    render_html,
    render_json,
    safe_relpath,
)


def devpi_page(*filenames: str, **extra) -> bytes:
    files = [
        {"filename": name, "url": f"../../+f/abc/0123456789abc/{name}", "hashes": {"sha256": "00" * 32}, **extra}
        for name in filenames
    ]
    return json.dumps({"meta": {"api-version": "1.0"}, "name": "numpy", "files": files}).encode()


def test_files_are_kept_only_when_name_matches_and_version_is_allowed():
    page = parse_devpi_page(
        devpi_page(
            "numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "NumPy-1.26.1.tar.gz",
            "numpy-2.0.0.tar.gz",
            "numpyx-1.26.0-py3-none-any.whl",
            "evil-1.26.0-py3-none-any.whl",
            "numpy-latest.exe",
            "numpy-1.26.0-py3-none-any.whl.bad",
            "numpy-notaversion.tar.gz",
            "numpy-1.26.2.zip",
        )
    )
    kept = allowed_files(page, "numpy", lambda version: version.startswith("1.26"))
    assert [f.filename for f in kept] == [
        "numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "NumPy-1.26.1.tar.gz",
        "numpy-1.26.2.zip",
    ]


def test_links_outside_devpi_files_are_dropped():
    body = json.dumps(
        {
            "name": "numpy",
            "files": [
                {"filename": "numpy-1.0.tar.gz", "url": "https://evil.example/numpy-1.0.tar.gz", "hashes": {}},
                {"filename": "numpy-1.1.tar.gz", "url": "../../+f/abc/def/numpy-1.0.tar.gz", "hashes": {}},
                {"filename": "numpy-1.2.tar.gz", "url": "../../+f/../etc/numpy-1.2.tar.gz", "hashes": {}},
            ],
        }
    ).encode()
    assert parse_devpi_page(body).files == ()


@pytest.mark.parametrize(
    ("relpath", "safe"),
    [
        ("abc/0123/numpy-1.0.tar.gz", True),
        ("../x/numpy-1.0.tar.gz", False),
        ("abc//numpy-1.0.tar.gz", False),
        ("numpy-1.0.tar.gz", False),
        ("abc/d%2e/numpy-1.0.tar.gz", False),
        ("abc/def/.hidden", False),
    ],
)
def test_safe_relpath(relpath, safe):
    assert safe_relpath(relpath) is safe


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        (JSON_V1, JSON_V1),
        ("application/json", None),
        (f"{JSON_V1}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", JSON_V1),
        (f"{JSON_V1};q=0, text/html", TEXT_HTML),
        ("text/html;q=abc", None),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) == expected


def test_renderers_escape_and_keep_attributes():
    page = parse_devpi_page(
        devpi_page("numpy-1.0.tar.gz", **{"requires-python": ">=3.9,<4", "yanked": "bad <b>", "core-metadata": True})
    )
    html = render_html("numpy", list(page.files)).decode()
    assert 'data-requires-python="&gt;=3.9,&lt;4"' in html and 'data-yanked="bad &lt;b&gt;"' in html
    assert 'href="../../files/numpy/abc/0123456789abc/numpy-1.0.tar.gz#sha256=' in html
    data = json.loads(render_json("numpy", list(page.files)))
    assert data["files"][0]["yanked"] == "bad <b>" and data["files"][0]["requires-python"] == ">=3.9,<4"
