"""The store's migration shortcut stays in step with Alembic."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from mirror.store.db import MIGRATIONS, SCHEMA_HEAD, Database


def test_schema_head_is_alembics_head():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_migrate_creates_a_new_database_and_skips_a_current_one(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'airlock.db'}")
    assert database.schema_revision() is None
    database.migrate()
    assert database.schema_revision() == SCHEMA_HEAD
    database.migrate()  # already at head: nothing to do, nothing breaks
    assert database.schema_revision() == SCHEMA_HEAD
    database.dispose()
