"""`airlock allowlist add --from FILE`: a team starts its allowlist from the files it already keeps."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from testkit.pypi import Release, Upstream
from testkit.servers import PypiIndexServer
from testkit.worlds import BIN

PYPI_YAML = """\
ecosystem: pypi
environments: {prod: {}, preprod: {extends: prod}}
packages:
  # kept as it is
  - {name: six, environments: [prod], reason: compat, owner: ml-platform}
"""
CONDA_YAML = """\
ecosystem: conda
environments: {prod: {}, preprod: {extends: prod}}
channels:
  conda-forge: {url: "http://127.0.0.1:9/conda-forge", subdirs: [noarch, linux-64]}
packages:
  - {spec: "python >=3.11", environments: [prod], reason: interpreter, owner: ml-platform}
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    index = Upstream(tmp_path_factory.mktemp("add-upstream") / "index")
    index.add(
        Release("frames", "2.3.3", requires=("dateish>=2.8.2",)),
        Release("dateish", "2.9.0", requires=("six>=1.5",)),
        Release("six", "1.17.0"),
        Release("tools", "0.4.2"),
    )
    index.publish()
    server = PypiIndexServer(index.root).start()
    yield f"{server.url}/simple/"
    server.stop()


@pytest.fixture
def folder(tmp_path) -> Path:
    allowlists = tmp_path / "allowlists"
    allowlists.mkdir()
    (allowlists / "pypi.yaml").write_text(PYPI_YAML)
    (allowlists / "conda.yaml").write_text(CONDA_YAML)
    return allowlists


def add(folder: Path, upstream: str, source: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRLOCK_PYPI_UPSTREAM": upstream, "AIRLOCK_DATA_DIR": str(folder.parent / "data")}
    return subprocess.run(
        [
            str(BIN / "airlock"),
            "allowlist",
            "add",
            "--from",
            str(source),
            "--env",
            "prod",
            "--owner",
            "churn-team",
            "--reason",
            "churn model",
            "--allowlists",
            str(folder),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_requirements_with_their_closure_shown_then_written(folder, upstream, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# the model's needs\nframes==2.3.3 \\\n    --hash=sha256:" + "0" * 64 + "\ntools>=0.4  # helpers\n"
    )
    before = (folder / "pypi.yaml").read_text()
    dry = add(folder, upstream, requirements, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        '+  - name: dateish\n+    versions: "==2.9.0"\n+    environments: [prod]\n+    reason: churn model\n+    owner: churn-team'
        in dry.stdout
    )
    assert "+  - name: frames" in dry.stdout and "+  - name: tools" in dry.stdout
    assert (
        "already allowed: six 1.17.0" in dry.stdout and "would add 3 entries (dry run: nothing written)" in dry.stdout
    )
    assert (folder / "pypi.yaml").read_text() == before
    written = add(folder, upstream, requirements, "--range", "compatible")
    assert written.returncode == 0, written.stderr
    after = (folder / "pypi.yaml").read_text()
    assert after.startswith(before) and 'versions: ">=0.4.2,<0.5"' in after and 'versions: ">=2.3.3,<3"' in after
    again = add(folder, upstream, requirements)
    assert again.returncode == 0 and "added 0 entries" in again.stdout and (folder / "pypi.yaml").read_text() == after


def test_uv_lock_and_pylock_toml(folder, upstream, tmp_path):
    uv_lock = tmp_path / "uv.lock"
    uv_lock.write_text(
        textwrap.dedent("""\
        version = 1
        [[package]]
        name = "churn-model"
        version = "0.1.0"
        source = { editable = "." }
        [[package]]
        name = "frames"
        version = "2.3.3"
        source = { registry = "https://pypi.org/simple" }
        [[package]]
        name = "six"
        version = "1.17.0"
        source = { registry = "https://pypi.org/simple" }
        """)
    )
    result = add(folder, upstream, uv_lock, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (
        "+  - name: frames" in result.stdout
        and "churn-model" not in result.stdout
        and "would add 1 entry" in result.stdout
    )
    pylock = tmp_path / "pylock.toml"
    pylock.write_text('lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "tools"\nversion = "0.4.2"\n')
    result = add(folder, upstream, pylock)
    assert result.returncode == 0, result.stderr
    assert 'name: tools\n    versions: "==0.4.2"' in (folder / "pypi.yaml").read_text()


def test_environment_yml_feeds_conda_and_pypi(folder, upstream, tmp_path):
    environment = tmp_path / "environment.yml"
    environment.write_text(
        textwrap.dedent("""\
        name: churn
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - numpy=1.26.4=py311h64a7726_0
          - pip:
            - tools==0.4.2
        """)
    )
    result = add(folder, upstream, environment)
    assert result.returncode == 0, result.stderr
    conda = (folder / "conda.yaml").read_text()
    assert '  - spec: "numpy ==1.26.4 py311h64a7726_0"\n    channel: conda-forge\n    environments: [prod]' in conda
    assert "already allowed: python 3.11" in result.stdout
    assert "name: tools" in (folder / "pypi.yaml").read_text()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "requirements.txt",
            "frames==2.3.3\nmylib @ https://example.org/mylib-1.0.tar.gz\n",
            "requirements.txt:2: 'mylib @ https://example.org/mylib-1.0.tar.gz' comes from a URL, not an index",
        ),
        ("requirements.txt", "-e .\n", "requirements.txt:1: '-e .' is an editable path"),
        ("uv.lock", "version = 1\n[[package]\nname = 'x'\n", "uv.lock: not valid TOML"),
        (
            "pylock.toml",
            'lock-version = "1.0"\n[[packages]]\nname = "nosuchlib"\nversion = "1.0"\n',
            "pylock.toml: nosuchlib: nosuchlib is not on the upstream index",
        ),
        ("requirements.txt", "frames>=99\n", "no version on the upstream index satisfies it"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(folder, upstream, tmp_path, name, text, message):
    source = tmp_path / name
    source.write_text(text)
    before = (folder / "pypi.yaml").read_text()
    result = add(folder, upstream, source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "nothing was written" in result.stderr
    assert (folder / "pypi.yaml").read_text() == before
