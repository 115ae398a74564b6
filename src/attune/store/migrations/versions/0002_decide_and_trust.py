"""Preferences, consent, placements, segments, recommendation logs, API keys, audit log.

Revision ID: 0002_decide_and_trust
Revises: 0001_initial
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_decide_and_trust"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

ID = 256


def upgrade() -> None:
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("preferences", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "user_consent",
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("tracking", sa.Boolean, nullable=False),
        sa.Column("personalization", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "placements",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "segments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "recommendation_logs",
        sa.Column("recommendation_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(ID), nullable=True),
        sa.Column("placement", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("context", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_recommendation_logs_user", "recommendation_logs", ["user_id"])
    op.create_index("ix_recommendation_logs_time", "recommendation_logs", ["created_at"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
    )
    op.create_index("ix_api_keys_workspace", "api_keys", ["workspace"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(ID), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_keys_workspace", "api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_recommendation_logs_time", "recommendation_logs")
    op.drop_index("ix_recommendation_logs_user", "recommendation_logs")
    op.drop_table("recommendation_logs")
    op.drop_table("segments")
    op.drop_table("placements")
    op.drop_table("user_consent")
    op.drop_table("user_preferences")
