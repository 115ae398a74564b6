"""Initial schema: events, items, users, model versions.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

ID = 256


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(ID), primary_key=True),
        sa.Column("user_id", sa.String(ID), nullable=True),
        sa.Column("anonymous_id", sa.String(ID), nullable=True),
        sa.Column("item_id", sa.String(ID), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("context", sa.JSON, nullable=True),
        sa.Column("properties", sa.JSON, nullable=True),
        sa.Column("recommendation_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_events_user_time", "events", ["user_id", "timestamp"])
    op.create_index("ix_events_anonymous", "events", ["anonymous_id"])
    op.create_index("ix_events_item", "events", ["item_id"])
    op.create_index("ix_events_time", "events", ["timestamp"])
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(ID), primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("translations", sa.JSON, nullable=True),
        sa.Column("regions", sa.JSON, nullable=True),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=True),
        sa.Column("properties", sa.JSON, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("traits", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("version_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),
        sa.Column("algorithm", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("data_window", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_table("users")
    op.drop_table("items")
    op.drop_index("ix_events_time", "events")
    op.drop_index("ix_events_item", "events")
    op.drop_index("ix_events_anonymous", "events")
    op.drop_index("ix_events_user_time", "events")
    op.drop_table("events")
