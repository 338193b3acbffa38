"""Exceptions approved with their closure: each dependency's grant points at the request it serves.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exception_requests") as table:
        table.add_column(sa.Column("parent_id", sa.Integer, nullable=True))
        table.create_index("ix_exception_requests_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("exception_requests") as table:
        table.drop_index("ix_exception_requests_parent_id")
        table.drop_column("parent_id")
