"""Configuration: airlock.toml in the working directory (or --config), overridden by AIRLOCK_*."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture
def bare_environment(tmp_path, monkeypatch):
    """No AIRLOCK_* variable, and a working directory without airlock.toml."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.lower().startswith("airlock_")]:
        monkeypatch.delenv(name)


def status(cwd, *args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    return subprocess.run(
        [sys.executable, "-m", "mirror", "status", "--json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, "PYTHONPATH": str(REPO_ROOT), **env},
    )


def test_airlock_toml_is_read_and_environment_variables_win(tmp_path):
    (tmp_path / "airlock.toml").write_text('listen = "127.0.0.1:9"\npublic_url = "https://airlock.example.org"\n')
    from_file = json.loads(status(tmp_path).stdout)
    assert from_file["url"] == "https://airlock.example.org" and from_file["ready"] is False
    assert "does not answer on 127.0.0.1:9" in from_file["error"]
    overridden = json.loads(status(tmp_path, AIRLOCK_LISTEN="127.0.0.1:10", AIRLOCK_PUBLIC_URL="").stdout)
    assert "does not answer on 127.0.0.1:10" in overridden["error"]


def test_bad_configuration_names_the_setting_and_changes_nothing(tmp_path):
    (tmp_path / "other.toml").write_text('listen = "nowhere"\nverbose = true\n')
    result = status(tmp_path, "--config", str(tmp_path / "other.toml"))
    assert result.returncode == 2
    assert "AIRLOCK_LISTEN (listen in airlock.toml): Value error, write HOST:PORT, e.g. 127.0.0.1:8000" in result.stderr
    assert "AIRLOCK_VERBOSE (verbose in airlock.toml): Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr
    missing = status(tmp_path, "--config", str(tmp_path / "absent.toml"))
    assert missing.returncode == 2 and "absent.toml: no such configuration file" in missing.stderr


def test_database_password_comes_from_a_file_not_the_url(tmp_path, monkeypatch):
    from mirror.settings import ConfigurationError, load_settings

    secret = tmp_path / "db_password"
    secret.write_text("s3cr:t/pw\n")
    monkeypatch.setenv("AIRLOCK_DATABASE_URL", "postgresql+psycopg://airlock@db:5432/airlock")
    monkeypatch.setenv("AIRLOCK_DATABASE_PASSWORD_FILE", str(secret))
    url = load_settings().resolved_database_url
    assert url == "postgresql+psycopg://airlock:s3cr%3At%2Fpw@db:5432/airlock"
    monkeypatch.setenv("AIRLOCK_DATABASE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="is not a readable file"):
        load_settings()


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"AIRLOCK_DATA_DIR": "state"},
        {"airlock_data_dir": "lower/case"},
        {"AIRLOCK_DATA_DIR": ""},
        {"AIRLOCK_LISTEN": "0.0.0.0:9"},
        {"Airlock_Database_Url": "postgresql+psycopg://airlock@db/airlock"},
    ],
    ids=["default", "data-dir", "any-case", "empty", "other-setting", "database-url"],
)
def test_the_gates_quick_database_lookup_agrees_with_the_settings(bare_environment, monkeypatch, environment):
    """`database_url` (the gate's way, without pydantic-settings) finds the database `load_settings()` would."""
    from mirror.settings import load_settings
    from mirror.store.location import database_url

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert database_url() == load_settings().resolved_database_url


@pytest.mark.parametrize(
    "configured", ["config-file", "named-config-file", "config-file-and-variable", "password-file"]
)
def test_the_gates_quick_database_lookup_reads_the_config_file_and_password_file(
    bare_environment, tmp_path, monkeypatch, configured
):
    from sqlalchemy.engine import make_url

    from mirror.settings import load_settings
    from mirror.store.location import database_url

    if configured == "config-file":
        (tmp_path / "airlock.toml").write_text('data_dir = "elsewhere"\n')
    elif configured == "named-config-file":
        (tmp_path / "site.toml").write_text('database_url = "postgresql+psycopg://airlock@db:5432/airlock"\n')
        monkeypatch.setenv("AIRLOCK_CONFIG", str(tmp_path / "site.toml"))
    elif configured == "config-file-and-variable":
        (tmp_path / "airlock.toml").write_text('data_dir = "elsewhere"\n')
        monkeypatch.setenv("AIRLOCK_DATA_DIR", "here")
    else:
        (tmp_path / "pw").write_text("s3cr:t/@pass\n")
        monkeypatch.setenv("AIRLOCK_DATABASE_URL", "postgresql+psycopg://airlock@db:5432/airlock")
        monkeypatch.setenv("AIRLOCK_DATABASE_PASSWORD_FILE", str(tmp_path / "pw"))
    ours, theirs = make_url(database_url()), make_url(load_settings().resolved_database_url)
    assert (ours.drivername, ours.username, ours.password, ours.host, ours.port, ours.database) == (
        theirs.drivername,
        theirs.username,
        theirs.password,
        theirs.host,
        theirs.port,
        theirs.database,
    )


def test_status_names_the_allowlists_conda_channels_and_registry_upstreams(tmp_path):
    clients = json.loads(
        status(tmp_path, AIRLOCK_LISTEN="127.0.0.1:9", AIRLOCK_ALLOWLISTS=str(REPO_ROOT / "allowlists")).stdout
    )["clients"]
    prod = next(client for client in clients if client["environment"] == "prod")
    assert prod["conda"] == "conda install --override-channels -c http://127.0.0.1:9/conda/prod/conda-forge PACKAGE"
    assert prod["docker"].startswith("docker pull 127.0.0.1:9/prod/mar/REPOSITORY:TAG")
    (tmp_path / "only-pypi").mkdir()
    (tmp_path / "only-pypi" / "pypi.yaml").write_text("ecosystem: pypi\nenvironments: {prod: {}}\npackages: []\n")
    [bare] = json.loads(
        status(tmp_path, AIRLOCK_LISTEN="127.0.0.1:9", AIRLOCK_ALLOWLISTS=str(tmp_path / "only-pypi")).stdout
    )["clients"]
    assert (
        "/conda/prod/CHANNEL PACKAGE" in bare["conda"] and "127.0.0.1:9/prod/UPSTREAM/REPOSITORY:TAG" in bare["docker"]
    )


def test_a_taken_port_is_one_line_and_nothing_started(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        result = subprocess.run(
            [sys.executable, "-m", "mirror", "up"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={
                **base,
                "PYTHONPATH": str(REPO_ROOT),
                "AIRLOCK_LISTEN": listen,
                "AIRLOCK_DATA_DIR": str(tmp_path / "data"),
                "AIRLOCK_ALLOWLISTS": str(REPO_ROOT / "allowlists"),
            },
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"airlock: cannot listen on {listen}: Address already in use; is Airlock already running there "
        "(`airlock status`)? Stop it, or set AIRLOCK_LISTEN to a free HOST:PORT\n"
    )
    assert not (tmp_path / "data").exists()  # no database, no devpi, no registry cache
