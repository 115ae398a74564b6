"""SQL stores behind the decision engine: preferences, placements, segments, logs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, bindparam, delete, func, select

from attune.store.sql._util import PreparedRead, chunks, dialect_insert, reading
from attune.store.sql.schema import placements, recommendation_logs, segments, user_preferences

EXPIRE_BATCH = 5_000
"""Log rows deleted per transaction when old ones expire."""


def _put(engine: Engine, table: Table, key: str, row: dict[str, Any]) -> None:
    """Insert or replace one row by primary key, keeping its ``created_at``."""
    statement = dialect_insert(engine, table).values(**row)
    changed = {c: statement.excluded[c] for c in row if c not in (key, "created_at")}
    with engine.begin() as conn:
        conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=changed))


def _delete(engine: Engine, table: Table, column: str, value: str) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(table).where(table.c[column] == value)).rowcount or 0


class SqlPreferenceStore:
    """Each person's stated preferences (liked and blocked items and categories, …)."""

    # built once: read on every recommendation request
    _GET = PreparedRead(
        select(user_preferences.c.preferences).where(
            user_preferences.c.user_id == bindparam("user")
        )
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, user_id: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            found = self._GET.rows(conn, {"user": user_id})
        return dict(found[0][0]) if found and found[0][0] is not None else None

    def put(self, user_id: str, preferences: dict[str, Any]) -> None:
        row = {"user_id": user_id, "preferences": preferences, "updated_at": time.time()}
        _put(self.engine, user_preferences, "user_id", row)

    def erase_user(self, user_id: str) -> int:
        return _delete(self.engine, user_preferences, "user_id", user_id)


class _NamedConfigStore:
    """Named documents with created/updated times (placements, segments)."""

    table: Table
    fields: tuple[str, ...]

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.name == name)).first()
        return dict(row._mapping) if row else None

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table).order_by(self.table.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def put(self, name: str, **values: Any) -> dict[str, Any]:
        """Create or replace ``name``; returns the stored row."""
        now = time.time()
        row = {"name": name, **values, "created_at": now, "updated_at": now}
        _put(self.engine, self.table, "name", row)
        stored = self.get(name)
        assert stored is not None
        return stored

    def delete(self, name: str) -> bool:
        return _delete(self.engine, self.table, "name", name) > 0

    def erase_user(self, user_id: str) -> int:
        """Configuration holds no personal data."""
        return 0


class SqlPlacementStore(_NamedConfigStore):
    """Placements: ``put(name, config=..., digest=...)``."""

    table = placements


class SqlSegmentStore(_NamedConfigStore):
    """Segments: ``put(name, rule=..., description=...)``."""

    table = segments


class SqlRecommendationLogStore:
    """What was shown to whom: one row per answered recommendation request."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert log rows (``recommendation_id`` is unique; repeats are ignored)."""
        if not rows:
            return 0
        statement = dialect_insert(self.engine, recommendation_logs).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            for part in chunks(rows):
                conn.execute(statement, list(part))
        return len(rows)

    def get(self, recommendation_id: str) -> dict[str, Any] | None:
        table = recommendation_logs
        query = select(table).where(table.c.recommendation_id == recommendation_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def for_user(self, user_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The person's logged recommendations, newest first."""
        table = recommendation_logs
        query = select(table).where(table.c.user_id == user_id).order_by(table.c.created_at.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def expire(self, cutoff: float, dry_run: bool = False, batch: int = EXPIRE_BATCH) -> int:
        """Delete (``dry_run``: count) the rows logged before ``cutoff``, ``batch`` rows per
        transaction, so the writer of new rows never waits long for the lock."""
        table = recommendation_logs
        old = table.c.created_at < cutoff
        if dry_run:
            counted = select(func.count()).select_from(table).where(old)
            with self.engine.connect() as conn:
                return int(conn.execute(counted).scalar_one())
        removed = 0
        while True:
            doomed = select(table.c.recommendation_id).where(old).limit(batch)
            with self.engine.begin() as conn:
                count = conn.execute(delete(table).where(table.c.recommendation_id.in_(doomed)))
                done = count.rowcount or 0
            removed += done
            if done < batch:
                return removed

    def erase_user(self, user_id: str) -> int:
        return _delete(self.engine, recommendation_logs, "user_id", user_id)
