"""Exceptions that waive named conditions (min_age, block_vulnerable, …) for the versions they name.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exception_requests") as table:
        table.add_column(sa.Column("waives", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exception_requests") as table:
        table.drop_column("waives")
