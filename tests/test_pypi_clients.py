"""Real pip and uv against the curated PyPI: what a data scientist sees in a workspace."""

from __future__ import annotations

import httpx
import pytest

from testkit.worlds import fresh_venv, installed, pip, uv


def test_pip_installs_an_allowed_package_with_its_allowed_dependency(pypi_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    result = pip(["--python", str(python), "install", "--index-url", pypi_world.index("prod"), "beta"], tmp_path)
    assert result.returncode == 0, result.stderr
    versions = installed(python)
    assert versions["beta"] == "1.0"
    assert versions["alpha"] == "1.1"  # 2.0 is outside prod's range, 1.0 is denied


def test_uv_installs_the_same_way(pypi_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    result = uv(["pip", "install", "--python", str(python), "--index-url", pypi_world.index("prod"), "beta"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert installed(python) == {"alpha": "1.1", "beta": "1.0"}


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_blocked_version_cannot_be_installed_in_prod_but_can_in_preprod(pypi_world, tmp_path, client):
    python = fresh_venv(tmp_path / "venv")
    if client == "pip":
        install = lambda env: pip(
            ["--python", str(python), "install", "--index-url", pypi_world.index(env), "alpha==2.0"], tmp_path
        )
    else:
        install = lambda env: uv(
            ["pip", "install", "--python", str(python), "--index-url", pypi_world.index(env), "alpha==2.0"], tmp_path
        )
    blocked = install("prod")
    assert blocked.returncode != 0
    assert "alpha" in blocked.stderr
    assert "2.0" not in installed(python).get("alpha", "")
    allowed = install("preprod")
    assert allowed.returncode == 0, allowed.stderr
    assert installed(python)["alpha"] == "2.0"


def test_pre_releases_only_where_the_allowlist_says_so(pypi_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    prod = pip(
        ["--python", str(python), "install", "--pre", "--index-url", pypi_world.index("prod"), "alpha"], tmp_path
    )
    assert prod.returncode == 0, prod.stderr
    assert installed(python)["alpha"] == "1.1"
    preprod = pip(
        ["--python", str(python), "install", "--pre", "--upgrade", "--index-url", pypi_world.index("preprod"), "alpha"],
        tmp_path,
    )
    assert preprod.returncode == 0, preprod.stderr
    assert installed(python)["alpha"] == "2.1rc1"


def test_a_dependency_that_is_not_allowlisted_fails_the_install(pypi_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    result = pip(["--python", str(python), "install", "--index-url", pypi_world.index("prod"), "gamma"], tmp_path)
    assert result.returncode != 0
    assert "delta" in result.stderr
    assert "gamma" not in installed(python)
    refused = httpx.get(pypi_world.index("prod") + "delta/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert refused.status_code == 200  # PEP 792: the project is quarantined here, so uv looks no further
    reason = refused.headers["X-Airlock-Reason"]
    assert reason.startswith("blocked: delta is not on the prod allowlist; to ask for it, request an exception")
    assert refused.json()["project-status"] == {"status": "quarantined", "reason": reason}
    assert refused.json()["files"] == [] and refused.json()["meta"]["api-version"] == "1.4"


def test_odd_spellings_local_versions_yanks_and_requires_python(pypi_world, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    result = pip(
        [
            "--python",
            str(python),
            "install",
            "--index-url",
            pypi_world.index("prod"),
            "ZETA.pkg",
            "torchish==2.0.0",
            "epsilon",
            "oldpy",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    versions = installed(python)
    assert versions["zeta-pkg"] == "1.0"
    assert versions["torchish"] == "2.0.0+cpu"
    assert versions["epsilon"] == "1.0"  # 1.1 is yanked
    assert versions["oldpy"] == "0.9"  # 1.0 requires Python < 3


def test_an_sdist_downloads_and_builds(pypi_world, tmp_path):
    result = pip(
        [
            "download",
            "--no-deps",
            "--no-build-isolation",
            "--no-binary",
            ":all:",
            "-d",
            str(tmp_path / "dl"),
            "--index-url",
            pypi_world.index("prod"),
            "sdistonly",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["sdistonly-1.0.tar.gz"]


def test_pip_download_of_a_blocked_version_by_direct_url_fails(pypi_world, tmp_path):
    page = httpx.get(
        pypi_world.index("preprod") + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    ).json()
    url = next(f["url"] for f in page["files"] if f["filename"] == "alpha-2.0-py3-none-any.whl")
    guessed = f"{pypi_world.url}/pypi/prod/files/{url.split('/files/', 1)[1]}"
    result = pip(["download", "--no-deps", "-d", str(tmp_path / "dl"), guessed], tmp_path)
    assert result.returncode != 0
    assert "404" in result.stderr
    refused = httpx.get(guessed)
    assert refused.status_code == 404
    assert refused.text.startswith("Airlock: blocked: alpha 2.0 is outside the allowed versions >=1.0,<2")
    assert refused.headers["X-Airlock-Reason"] == refused.text.removeprefix("Airlock: ").strip()
