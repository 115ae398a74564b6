"""Deleted items are remembered (``item_tombstones``) so serving never shows them.

Revision ID: 0004_item_tombstones
Revises: 0003_retire_old_champions
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_item_tombstones"
down_revision = "0003_retire_old_champions"
branch_labels = None
depends_on = None

ID = 256


def upgrade() -> None:
    op.create_table(
        "item_tombstones",
        sa.Column("item_id", sa.String(ID), primary_key=True),
        sa.Column("deleted_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("item_tombstones")
