"""SQL event store: idempotent inserts keyed by ``event_id``, per-user history reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from sqlalchemy import Engine, delete, func, or_, select

from attune.store.protocols import EventRow, HistoryEvent
from attune.store.sql._util import chunks
from attune.store.sql.bulk import insert_new_events
from attune.store.sql.schema import events


class SqlEventStore:
    """Events in one table; see :class:`attune.store.protocols.EventStore`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_events(self, rows: Sequence[EventRow]) -> set[str]:
        inserted: set[str] = set()
        if not rows:
            return inserted
        with self.engine.begin() as conn:
            for part in chunks(rows, 20_000):
                inserted |= insert_new_events(conn, part)
        return inserted

    def existing_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for part in chunks(ids, 900):
                query = select(events.c.event_id).where(events.c.event_id.in_(part))
                found.update(conn.execute(query).scalars())
        return found

    def _user_clause(self, user_id: str):  # type: ignore[no-untyped-def]
        return or_(events.c.user_id == user_id, events.c.anonymous_id == user_id)

    def user_history(self, user_id: str, limit: int | None = None) -> list[HistoryEvent]:
        query = (
            select(events.c.item_id, events.c.type, events.c.value, events.c.timestamp)
            .where(self._user_clause(user_id), events.c.item_id.is_not(None))
            .order_by(events.c.timestamp.desc(), events.c.event_id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [HistoryEvent(r[0], r[1], r[2], r[3]) for r in reversed(rows)]

    def user_histories(
        self, user_ids: Sequence[str], limit: int | None = None
    ) -> dict[str, list[HistoryEvent]]:
        found: dict[str, list[HistoryEvent]] = {}
        ids = list(dict.fromkeys(user_ids))
        with self.engine.connect() as conn:
            for part in chunks(ids, 400):
                query = (
                    select(
                        events.c.user_id,
                        events.c.anonymous_id,
                        events.c.item_id,
                        events.c.type,
                        events.c.value,
                        events.c.timestamp,
                    )
                    .where(
                        or_(events.c.user_id.in_(part), events.c.anonymous_id.in_(part)),
                        events.c.item_id.is_not(None),
                    )
                    .order_by(events.c.timestamp, events.c.event_id)
                )
                wanted = set(part)
                for row in conn.execute(query):
                    event = HistoryEvent(row[2], row[3], row[4], row[5])
                    for owner in {row[0], row[1]} & wanted:
                        found.setdefault(owner, []).append(event)
        if limit is not None:
            found = {u: h[-limit:] for u, h in found.items()}
        return found

    def user_events(self, user_id: str, limit: int = 100) -> list[EventRow]:
        query = (
            select(events)
            .where(self._user_clause(user_id))
            .order_by(events.c.timestamp.desc(), events.c.event_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def interaction_frame(self, types: Sequence[str] | None = None) -> pd.DataFrame:
        user = func.coalesce(events.c.user_id, events.c.anonymous_id).label("user_id")
        query = select(
            user, events.c.item_id, events.c.type, events.c.value, events.c.timestamp
        ).where(events.c.item_id.is_not(None), user.is_not(None))
        if types is not None:
            query = query.where(events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        if frame.empty:
            frame = pd.DataFrame(
                {
                    "user_id": pd.Series(dtype=object),
                    "item_id": pd.Series(dtype=object),
                    "type": pd.Series(dtype=object),
                    "value": pd.Series(dtype="float64"),
                    "timestamp": pd.Series(dtype="float64"),
                }
            )
        frame["value"] = frame["value"].astype("float64")
        frame["timestamp"] = frame["timestamp"].astype("float64")
        return frame

    def count_by_type(self) -> dict[str, int]:
        query = select(events.c.type, func.count()).group_by(events.c.type).order_by(events.c.type)
        with self.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def count_users(self) -> int:
        user = func.coalesce(events.c.user_id, events.c.anonymous_id)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count(func.distinct(user)))).scalar_one())

    def count_items(self) -> int:
        with self.engine.connect() as conn:
            query = select(func.count(func.distinct(events.c.item_id)))
            return int(conn.execute(query).scalar_one())

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def erase_user(self, user_id: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(events).where(self._user_clause(user_id))).rowcount or 0
