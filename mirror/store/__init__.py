"""Airlock's state: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema managed by Alembic."""
