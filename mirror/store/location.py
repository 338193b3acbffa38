"""Where the database is, for short-lived commands, without loading every setting.

`mirror.settings` (pydantic-settings) costs about 0.07 s to import, and the gate runs once per
deployment beside Trivy on the CI machine's few cores. The database is named by three settings
only — the data dir, the database URL and its password file — read here as pydantic-settings reads
them: `AIRLOCK_*` variables (names in any case) over `airlock.toml` (or AIRLOCK_CONFIG) over the
defaults. A test compares this reader with `Settings.resolved_database_url` on every path.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

# mirror.settings uses these too.
CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE = "AIRLOCK_CONFIG", "airlock.toml"
DEFAULT_DATA_DIR = ".airlock"
DATABASE_FILE = "airlock.db"
"""The embedded SQLite database, in the data dir."""
_NAMES = ("data_dir", "database_url", "database_password_file")


def _configured(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    config = Path(environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
    if config.is_file():
        try:
            document = tomllib.loads(config.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            document = {}
        found.update({name: str(document[name]) for name in _NAMES if name in document})
    variables = {name.lower(): value for name, value in environ.items()}
    found.update({name: variables[f"airlock_{name}"] for name in _NAMES if f"airlock_{name}" in variables})
    return found


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The data dir the service would use (AIRLOCK_DATA_DIR, airlock.toml, else `.airlock`)."""
    return Path(_configured(os.environ if environ is None else environ).get("data_dir", DEFAULT_DATA_DIR))


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The SQLAlchemy URL the service would use (password file applied)."""
    found = _configured(os.environ if environ is None else environ)
    url = (
        found.get("database_url")
        or f"sqlite:///{(Path(found.get('data_dir', DEFAULT_DATA_DIR)) / DATABASE_FILE).resolve()}"
    )
    password_file = found.get("database_password_file")
    if not password_file:
        return url
    password = Path(password_file).read_text().strip()
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def embedded_sqlite_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The SQLite database file when the database is one (the default), else None."""
    url = database_url(environ)
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
