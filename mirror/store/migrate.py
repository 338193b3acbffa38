"""`python -m mirror.store.migrate`: create or upgrade the configured database, then exit.

Short-lived commands that write only the audit log (the gate) run this as a child process when the
database is new or its schema is old, so they never import SQLAlchemy, Alembic or the settings.
Exit 0 when the schema is current, 1 (with the reason on stderr) when the database cannot be used.
"""

from __future__ import annotations

import sys


def main() -> int:
    from mirror.settings import ConfigurationError, load_settings
    from mirror.store.db import Database, DatabaseUnavailable

    try:
        database = Database(load_settings().resolved_database_url)
        database.migrate()
    except (ConfigurationError, DatabaseUnavailable) as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return 1
    database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
