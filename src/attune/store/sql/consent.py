"""SQL consent store on the ``user_consent`` table (one row per person who stated consent)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, delete, select

from attune.store.protocols import Consent
from attune.store.sql._util import PreparedRead, chunks, dialect_insert, reading
from attune.store.sql.schema import user_consent

# built once: read on every recommendation request
_GET = PreparedRead(select(user_consent).where(user_consent.c.user_id == bindparam("user")))

Update = tuple[str, bool | None, bool | None]
"""``(user_id, tracking, personalization)``; None leaves that field as it is."""


def _consent(row: Mapping[str, Any]) -> Consent:
    return Consent(
        user_id=row["user_id"],
        tracking=bool(row["tracking"]),
        personalization=bool(row["personalization"]),
        source=row["source"],
        updated_at=float(row["updated_at"]),
    )


class SqlConsentStore:
    """See :class:`attune.store.protocols.ConsentStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, user_id: str) -> Consent | None:
        with reading(self.engine) as conn:
            row = _GET.mapping(conn, {"user": user_id})
        return _consent(row) if row else None

    def get_many(self, user_ids: Sequence[str]) -> dict[str, Consent]:
        found: dict[str, Consent] = {}
        with self.engine.connect() as conn:
            for part in chunks(list(dict.fromkeys(user_ids)), 900):
                query = select(user_consent).where(user_consent.c.user_id.in_(part))
                found.update((row.user_id, _consent(row._mapping)) for row in conn.execute(query))
        return found

    def set(
        self,
        user_id: str,
        *,
        tracking: bool | None = None,
        personalization: bool | None = None,
        source: str = "api",
        default: bool = True,
    ) -> Consent:
        self.set_many([(user_id, tracking, personalization)], source, default)
        stored = self.get(user_id)
        assert stored is not None  # just written in a committed transaction
        return stored

    def set_many(self, updates: Sequence[Update], source: str, default: bool = True) -> int:
        """One upsert per update, in order, in one transaction.

        Each upsert only overwrites the fields it names, so two writers changing different
        fields of one person never undo each other (no read-modify-write).
        """
        if not updates:
            return 0
        now = time.time()
        with self.engine.begin() as conn:
            for user_id, tracking, personalization in updates:
                values = {
                    "user_id": user_id,
                    "tracking": default if tracking is None else tracking,
                    "personalization": default if personalization is None else personalization,
                    "source": source,
                    "updated_at": now,
                }
                statement = dialect_insert(self.engine, user_consent).values(**values)
                changed = {"source": source, "updated_at": now}
                if tracking is not None:
                    changed["tracking"] = tracking
                if personalization is not None:
                    changed["personalization"] = personalization
                conn.execute(
                    statement.on_conflict_do_update(index_elements=["user_id"], set_=changed)
                )
        return len(updates)

    def user_ids(
        self, *, tracking: bool | None = None, personalization: bool | None = None
    ) -> set[str]:
        query = select(user_consent.c.user_id)
        if tracking is not None:
            query = query.where(user_consent.c.tracking.is_(tracking))
        if personalization is not None:
            query = query.where(user_consent.c.personalization.is_(personalization))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def erase_user(self, user_id: str) -> int:
        with self.engine.begin() as conn:
            query = delete(user_consent).where(user_consent.c.user_id == user_id)
            return conn.execute(query).rowcount or 0
