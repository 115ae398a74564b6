"""SQL stores for the catalog (items) and for user profiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, insert, select

from attune.store.protocols import ItemRow, Page, UserRow
from attune.store.sql._util import (
    PreparedRead,
    chunks,
    decode_cursor,
    dialect_insert,
    encode_cursor,
    reading,
)
from attune.store.sql.schema import catalog_changes, catalog_state, item_tombstones, items, users


def _upsert(
    engine: Engine,
    table: Table,
    key: str,
    rows: Sequence[dict[str, Any]],
    keep: tuple[str, ...] = (),
    then: Callable[[Connection, Sequence[dict[str, Any]]], object] | None = None,
    last: Callable[[Connection], object] | None = None,
) -> int:
    """Insert or replace rows by primary key; columns in ``keep`` survive an update.
    ``then`` runs for each chunk of rows and ``last`` once at the end, in the same
    transaction."""
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
        if last is not None:
            last(conn)
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


ITEM_FRAME_COLUMNS = [
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
LOGGED_IDS = 10_000
"""A write of more items than this is logged without their ids: readers re-read it all."""
KEPT_CHANGES = 10_000
"""Change-log rows kept (older ones are pruned): a reader further behind re-reads all."""
PRUNE_EVERY = 500


def _next_version(engine: Engine, conn: Connection, item_ids: Sequence[str]) -> int:
    """Move the catalog's version on by one inside a write's transaction and log the ids
    the write changed. The version row stays locked until the write commits, so
    concurrent writers take turns here and versions commit in order, without gaps."""
    bump = dialect_insert(engine, catalog_state).values(name="items", version=1)
    bump = bump.on_conflict_do_update(
        index_elements=["name"], set_={"version": catalog_state.c.version + 1}
    ).returning(catalog_state.c.version)
    version = int(conn.execute(bump).scalar_one())
    ids = list(dict.fromkeys(item_ids))
    logged = ids if len(ids) <= LOGGED_IDS else None
    conn.execute(
        insert(catalog_changes).values(version=version, item_ids=logged, changed_at=time.time())
    )
    if version % PRUNE_EVERY == 0:
        old = catalog_changes.c.version <= version - KEPT_CHANGES
        conn.execute(delete(catalog_changes).where(old))
    return version


def _version(conn: Connection) -> int:
    query = select(catalog_state.c.version).where(catalog_state.c.name == "items")
    return int(conn.execute(query).scalar() or 0)


class SqlCatalogStore:
    """Items; see :class:`attune.store.protocols.CatalogStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_items(self, rows: Sequence[ItemRow]) -> int:
        """Create or replace items; an item deleted before is back (its tombstone lifted
        in the same transaction)."""
        return _upsert(
            self.engine,
            items,
            "item_id",
            rows,
            then=_lift_tombstones,
            last=lambda conn: _next_version(self.engine, conn, [r["item_id"] for r in rows]),
        )

    def patch_items(
        self, item_ids: Sequence[str], change: Callable[[ItemRow], ItemRow | None]
    ) -> list[ItemRow]:
        """Rewrite stored items in one transaction: each of ``item_ids`` the catalog holds
        is read and replaced by ``change(row)`` (None: left as it is). The catalog's
        version is moved on first, which locks it until the commit, so concurrent
        writers take turns and no change is lost between a read and its write (two
        partial updates of one item both land). Returns the rows written."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return []
        statement = dialect_insert(self.engine, items)
        columns = [c.name for c in items.columns if c.name != "item_id"]
        statement = statement.on_conflict_do_update(
            index_elements=["item_id"], set_={name: statement.excluded[name] for name in columns}
        )
        written: list[ItemRow] = []
        with self.engine.begin() as conn:
            _next_version(self.engine, conn, ids)
            for part in chunks(ids, 900):
                stored = conn.execute(select(items).where(items.c.item_id.in_(part)))
                for row in stored:
                    changed = change(dict(row._mapping))
                    if changed is not None:
                        written.append(changed)
            for part in chunks(written):
                conn.execute(statement, list(part))
        return written

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
            if ids:
                _next_version(self.engine, conn, ids)
        return held

    def deleted_item_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(item_tombstones.c.item_id)).scalars())

    def item_frame(self, item_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Every item's id and fields (only those of ``item_ids`` when given), for content
        models, evaluation and filters."""
        query = select(*(items.c[name] for name in ITEM_FRAME_COLUMNS))
        with self.engine.connect() as conn:
            if item_ids is None:
                rows = conn.execute(query).all()
            else:
                rows = [
                    row
                    for part in chunks(list(dict.fromkeys(item_ids)), 900)
                    for row in conn.execute(query.where(items.c.item_id.in_(part)))
                ]
        return pd.DataFrame([tuple(r) for r in rows], columns=ITEM_FRAME_COLUMNS)

    def content_stamp(self) -> str:
        """The catalog's version (moved on by every write or delete), as text."""
        with self.engine.connect() as conn:
            return str(_version(conn))

    def changes_since(self, stamp: str, limit: int = LOGGED_IDS) -> tuple[str, list[str]] | None:
        """The ids of the items written or deleted since the catalog's state ``stamp``
        (a :meth:`content_stamp`), with the stamp of the state they lead to; None when
        they cannot be told: the log no longer reaches back, a write too large to list its
        ids, more than ``limit`` ids, or an unknown stamp."""
        try:
            since = int(stamp)
        except ValueError:
            return None
        with self.engine.connect() as conn:
            version = _version(conn)
            if version == since:
                return stamp, []
            if not since < version <= since + limit:
                return None
            query = (
                select(catalog_changes.c.item_ids)
                .where(catalog_changes.c.version > since, catalog_changes.c.version <= version)
                .order_by(catalog_changes.c.version)
            )
            logged = conn.execute(query).scalars().all()
        if len(logged) != version - since or any(ids is None for ids in logged):
            return None
        changed = list(dict.fromkeys(i for ids in logged for i in ids))
        return (str(version), changed) if len(changed) <= limit else None

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
