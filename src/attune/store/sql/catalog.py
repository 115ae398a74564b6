"""SQL stores for the catalog (items) and for user profiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, select

from attune.store.protocols import ItemRow, Page, UserRow
from attune.store.sql._util import (
    PreparedRead,
    chunks,
    decode_cursor,
    dialect_insert,
    encode_cursor,
    reading,
)
from attune.store.sql.schema import item_tombstones, items, users


def _upsert(
    engine: Engine,
    table: Table,
    key: str,
    rows: Sequence[dict[str, Any]],
    keep: tuple[str, ...] = (),
    then: Callable[[Connection, Sequence[dict[str, Any]]], object] | None = None,
) -> int:
    """Insert or replace rows by primary key; columns in ``keep`` survive an update.
    ``then`` runs for each chunk of rows in the same transaction."""
    if not rows:
        return 0
    statement = dialect_insert(engine, table)
    columns = [c.name for c in table.columns if c.name != key and c.name not in keep]
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_={name: statement.excluded[name] for name in columns}
    )
    with engine.begin() as conn:
        for part in chunks(rows):
            conn.execute(statement, list(part))
            if then is not None:
                then(conn, part)
    return len(rows)


def _page(engine: Engine, table: Table, key: str, cursor: str | None, limit: int) -> Page:
    column = table.c[key]
    query = select(table).order_by(column).limit(limit + 1)
    if cursor:
        query = query.where(column > decode_cursor(cursor))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1][key]) if more and rows else None)


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _lift_tombstones(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Forget that the items of ``rows`` were deleted (they are written again)."""
    for part in chunks(list({row["item_id"] for row in rows}), 900):
        conn.execute(delete(item_tombstones).where(item_tombstones.c.item_id.in_(part)))


class SqlCatalogStore:
    """Items; see :class:`attune.store.protocols.CatalogStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_items(self, rows: Sequence[ItemRow]) -> int:
        """Create or replace items; an item deleted before is back (its tombstone lifted
        in the same transaction)."""
        return _upsert(self.engine, items, "item_id", rows, then=_lift_tombstones)

    def get_item(self, item_id: str) -> ItemRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
        return dict(row._mapping) if row else None

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRow]:
        found: dict[str, ItemRow] = {}
        with self.engine.connect() as conn:
            for part in chunks(list(dict.fromkeys(item_ids)), 900):
                for row in conn.execute(select(items).where(items.c.item_id.in_(part))):
                    found[row.item_id] = dict(row._mapping)
        return found

    def list_items(self, cursor: str | None = None, limit: int = 100) -> Page:
        return _page(self.engine, items, "item_id", cursor, limit)

    def delete_item(self, item_id: str, deleted_at: float | None = None) -> bool:
        """Remove the item from the catalog and leave a tombstone (also for an item the
        catalog never held, known only from events), so serving never shows it again;
        whether the catalog held it."""
        return bool(self.delete_items([item_id], deleted_at))

    def delete_items(self, item_ids: Sequence[str], deleted_at: float | None = None) -> set[str]:
        """:meth:`delete_item` for many ids in one transaction; the ids the catalog held."""
        ids = list(dict.fromkeys(item_ids))
        when = time.time() if deleted_at is None else deleted_at
        tombstone = dialect_insert(self.engine, item_tombstones)
        tombstone = tombstone.on_conflict_do_update(
            index_elements=["item_id"], set_={"deleted_at": tombstone.excluded.deleted_at}
        )
        held: set[str] = set()
        with self.engine.begin() as conn:
            for part in chunks(ids, 900):
                gone = conn.execute(
                    delete(items).where(items.c.item_id.in_(part)).returning(items.c.item_id)
                )
                held.update(gone.scalars())
                conn.execute(tombstone, [{"item_id": i, "deleted_at": when} for i in part])
        return held

    def deleted_item_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(item_tombstones.c.item_id)).scalars())

    def item_frame(self) -> pd.DataFrame:
        """Every item's id and fields, for content models, evaluation and filters."""
        columns = [
            "item_id",
            "title",
            "text",
            "categories",
            "tags",
            "available",
            "price",
            "regions",
            "language",
            "created_at",
            "properties",
        ]
        query = select(*(items.c[name] for name in columns))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    def content_stamp(self) -> str:
        """Changes whenever an item is written or deleted (count and sum of ``updated_at``)."""
        query = select(func.count(), func.coalesce(func.sum(items.c.updated_at), 0.0))
        with self.engine.connect() as conn:
            count, total = conn.execute(query).one()
        return f"{int(count)}:{float(total)!r}"

    def unavailable_item_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            query = select(items.c.item_id).where(items.c.available.is_(False))
            return set(conn.execute(query).scalars()) | set(
                conn.execute(select(item_tombstones.c.item_id)).scalars()
            )

    def count(self) -> int:
        return _count(self.engine, items)

    def erase_user(self, user_id: str) -> int:
        """Items hold no personal data."""
        return 0


class SqlUserStore:
    """User profiles; see :class:`attune.store.protocols.UserStore`."""

    # built once: read on every recommendation request
    _GET = PreparedRead(select(users).where(users.c.user_id == bindparam("user")))

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_users(self, rows: Sequence[UserRow]) -> int:
        return _upsert(self.engine, users, "user_id", rows, keep=("created_at",))

    def get_user(self, user_id: str) -> UserRow | None:
        with reading(self.engine) as conn:
            return self._GET.mapping(conn, {"user": user_id})  # type: ignore[return-value]

    def list_users(self, cursor: str | None = None, limit: int = 100) -> Page:
        return _page(self.engine, users, "user_id", cursor, limit)

    def count(self) -> int:
        return _count(self.engine, users)

    def erase_user(self, user_id: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(users).where(users.c.user_id == user_id)).rowcount or 0
