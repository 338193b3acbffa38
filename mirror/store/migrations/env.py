"""Alembic environment: Airlock passes its own connection (see `Database.migrate`)."""

from alembic import context

from mirror.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
