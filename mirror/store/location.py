"""Where the database is, for short-lived commands, without loading every setting.

`mirror.settings` (pydantic-settings) costs about 0.07 s to import, and the gate runs once per
deployment beside Trivy on the CI machine's few cores. When only the environment configures the
database (no configuration file, no AIRLOCK_DATABASE_URL, no password file) it is the embedded
SQLite file in AIRLOCK_DATA_DIR, read here as pydantic-settings reads it (names in any case).
Anything else: None, and the caller asks `mirror.settings.load_settings()`, which knows every rule.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

# mirror.settings uses these too (and a test compares the two readers on every path here).
CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE = "AIRLOCK_CONFIG", "airlock.toml"
DEFAULT_DATA_DIR = ".airlock"
DATABASE_FILE = "airlock.db"
"""The embedded SQLite database, in the data dir."""
_DEFERRED = ("airlock_database_url", "airlock_database_password_file")


def embedded_sqlite_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The default SQLite database's path, or None when the configuration says more than that."""
    environ = os.environ if environ is None else environ
    if Path(environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE)).is_file():
        return None
    variables = {name.lower(): value for name, value in environ.items()}
    if any(name in variables for name in _DEFERRED):
        return None
    return (Path(variables.get("airlock_data_dir", DEFAULT_DATA_DIR)) / DATABASE_FILE).resolve()
