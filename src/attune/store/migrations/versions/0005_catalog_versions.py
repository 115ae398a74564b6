"""The catalog's version and its change log, so serving applies a write's items alone
instead of re-reading the whole catalog (``catalog_state``, ``catalog_changes``).

Revision ID: 0005_catalog_versions
Revises: 0004_item_tombstones
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_catalog_versions"
down_revision = "0004_item_tombstones"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "catalog_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "catalog_changes",
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("item_ids", sa.JSON, nullable=True),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.bulk_insert(state, [{"name": "items", "version": 0}])


def downgrade() -> None:
    op.drop_table("catalog_changes")
    op.drop_table("catalog_state")
