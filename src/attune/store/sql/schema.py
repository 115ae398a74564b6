"""The one SQLAlchemy Core schema, shared by SQLite and PostgreSQL.

Times are stored as UTC Unix seconds (double precision): one representation on every
backend, cheap to compare and to load into numpy. Free-form fields are JSON.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = 256  # the longest external id (user, item, event) Attune accepts

events = Table(
    "events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("user_id", String(ID), nullable=True),
    Column("anonymous_id", String(ID), nullable=True),
    Column("item_id", String(ID), nullable=True),
    Column("type", String(64), nullable=False),
    Column("value", Float, nullable=True),
    Column("timestamp", Float, nullable=False, doc="client time, UTC Unix seconds"),
    Column("received_at", Float, nullable=False, doc="server time, UTC Unix seconds"),
    Column("context", JSON, nullable=True),
    Column("properties", JSON, nullable=True),
    Column("recommendation_id", String(64), nullable=True),
    Index("ix_events_user_time", "user_id", "timestamp"),
    Index("ix_events_anonymous", "anonymous_id"),
    Index("ix_events_item", "item_id"),
    Index("ix_events_time", "timestamp"),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(ID), primary_key=True),
    Column("title", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("categories", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("language", String(35), nullable=True),
    Column("translations", JSON, nullable=True),
    Column("regions", JSON, nullable=True, doc="null: available everywhere"),
    Column("available", Boolean, nullable=False, default=True),
    Column("price", Float, nullable=True),
    Column("created_at", Float, nullable=True),
    Column("properties", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# items deleted from the catalog: never recommended, though events still name them and
# trained models may know them; writing the item again lifts its tombstone
item_tombstones = Table(
    "item_tombstones",
    metadata,
    Column("item_id", String(ID), primary_key=True),
    Column("deleted_at", Float, nullable=False),
)

# the catalog's version: every write (upsert or delete) moves it on by one, in its own
# transaction, and logs the ids it changed, so a serving process that read version v
# can apply just what changed since (``SqlCatalogStore.changes_since``). The one row is
# updated first thing in a write's transaction: catalog writers take turns, and the
# versions commit in order, with no gaps
catalog_state = Table(
    "catalog_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

catalog_changes = Table(
    "catalog_changes",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("item_ids", JSON, nullable=True, doc="null: too many to list (re-read all)"),
    Column("changed_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("traits", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version_id", String(128), primary_key=True),
    Column("seq", Integer, nullable=False, unique=True, doc="monotonic; newest wins"),
    Column("algorithm", String(128), nullable=False),
    Column("params", JSON, nullable=False),
    Column("data_window", JSON, nullable=False),
    Column("metrics", JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

user_preferences = Table(
    "user_preferences",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("preferences", JSON, nullable=False, doc="liked/blocked items and categories, …"),
    Column("updated_at", Float, nullable=False),
)

user_consent = Table(
    "user_consent",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("tracking", Boolean, nullable=False),
    Column("personalization", Boolean, nullable=False),
    Column("source", String(32), nullable=False, doc="api or event"),
    Column("updated_at", Float, nullable=False),
)

placements = Table(
    "placements",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("digest", String(64), nullable=False, doc="hash of config; stamps cached answers"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

segments = Table(
    "segments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("rule", Text, nullable=False, doc="an expression over user traits and behaviour"),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

recommendation_logs = Table(
    "recommendation_logs",
    metadata,
    Column("recommendation_id", String(64), primary_key=True),
    Column("user_id", String(ID), nullable=True),
    Column("placement", String(128), nullable=True),
    Column("model_version", String(128), nullable=True),
    Column("items", JSON, nullable=False, doc="[{item_id, score, source}] in shown order"),
    Column("context", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_recommendation_logs_user", "user_id"),
    Index("ix_recommendation_logs_time", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True, doc="public, shown in listings"),
    Column("workspace", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False, doc="secret or public"),
    Column("scopes", JSON, nullable=False),
    Column("secret_hash", String(128), nullable=False, doc="never the key itself"),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Index("ix_api_keys_workspace", "workspace"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("workspace", String(64), nullable=False),
    Column("actor", String(64), nullable=True, doc="key_id, or 'cli'"),
    Column("action", String(64), nullable=False),
    Column("target", String(ID), nullable=True),
    Column("details", JSON, nullable=True),
    Index("ix_audit_log_at", "at"),
)
