"""SQL event store: idempotent inserts keyed by ``event_id``, per-user history reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import pandas as pd
from sqlalchemy import Engine, and_, bindparam, case, delete, func, or_, select

from attune.store.protocols import EventRow, HistoryEvent
from attune.store.sql._util import PreparedRead, chunks, reading
from attune.store.sql.bulk import insert_new_events
from attune.store.sql.schema import events

ARRIVAL = (events.c.timestamp, events.c.received_at, events.c.event_id)
"""The one order of a person's events, for training and serving alike: by time, equal
times in the order they arrived (then by id, so the order never varies)."""

# built once: read on every recommendation request, where building the statement would
# cost several times what SQLite takes to answer it
_HISTORY_QUERY = (
    select(events.c.item_id, events.c.type, events.c.value, events.c.timestamp)
    .where(
        or_(events.c.user_id == bindparam("user"), events.c.anonymous_id == bindparam("user")),
        events.c.item_id.is_not(None),
    )
    .order_by(*(c.desc() for c in ARRIVAL))
)
_HISTORY = PreparedRead(_HISTORY_QUERY)
_HISTORY_LIMITED = PreparedRead(_HISTORY_QUERY.limit(bindparam("limit")))
_MARKS = PreparedRead(
    select(events.c.item_id, events.c.type, func.max(events.c.timestamp))
    .where(_HISTORY_QUERY.whereclause)
    .group_by(events.c.item_id, events.c.type)
)


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
        query, params = _HISTORY, {"user": user_id}
        if limit is not None:
            query, params["limit"] = _HISTORY_LIMITED, limit
        with reading(self.engine) as conn:
            rows = query.rows(conn, params)
        return [HistoryEvent(r[0], r[1], r[2], r[3]) for r in reversed(rows)]

    def user_item_marks(self, user_id: str) -> list[HistoryEvent]:
        with reading(self.engine) as conn:
            rows = _MARKS.rows(conn, {"user": user_id})
        return [HistoryEvent(r[0], r[1], None, float(r[2])) for r in rows]

    def item_counts(self, since: float, until: float | None = None) -> dict[str, int]:
        """Distinct people per item with an event in [since, until): trending's raw data.

        An anonymised event (no user or anonymous id: no tracking consent) counts as one
        person of its own, so item popularity still sees it.
        """
        person = func.coalesce(events.c.user_id, events.c.anonymous_id)
        clauses = [events.c.item_id.is_not(None), events.c.timestamp >= since]
        if until is not None:
            clauses.append(events.c.timestamp < until)
        anonymised = func.sum(case((person.is_(None), 1), else_=0))
        query = (
            select(events.c.item_id, func.count(person.distinct()) + anonymised)
            .where(*clauses)
            .group_by(events.c.item_id)
        )
        with self.engine.connect() as conn:
            return {str(item): int(count) for item, count in conn.execute(query).all()}

    def latest_timestamp(self) -> float | None:
        """The newest event time (None when there are no events)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events.c.timestamp))).scalar_one_or_none()
        return None if value is None else float(value)

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
                    .order_by(*ARRIVAL)
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

    def interaction_frame(
        self, types: Sequence[str] | None = None, with_context: bool = False
    ) -> pd.DataFrame:
        user = func.coalesce(events.c.user_id, events.c.anonymous_id).label("user_id")
        columns = [user, events.c.item_id, events.c.type, events.c.value, events.c.timestamp]
        if with_context:
            columns.append(events.c.context)
        query = (
            select(*columns)
            .where(events.c.item_id.is_not(None), user.is_not(None))
            .order_by(*ARRIVAL)
        )
        if types is not None:
            query = query.where(events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            # plain tuples: pandas probes every Row object for attributes, which costs
            # SQLAlchemy an exception per row (3 s of a 5 s load for 100k events)
            frame = pd.DataFrame([tuple(r) for r in result], columns=list(result.keys()))
        if frame.empty:
            frame = pd.DataFrame(
                {
                    "user_id": pd.Series(dtype=object),
                    "item_id": pd.Series(dtype=object),
                    "type": pd.Series(dtype=object),
                    "value": pd.Series(dtype="float64"),
                    "timestamp": pd.Series(dtype="float64"),
                    **({"context": pd.Series(dtype=object)} if with_context else {}),
                }
            )
        frame["value"] = frame["value"].astype("float64")
        frame["timestamp"] = frame["timestamp"].astype("float64")
        return frame

    def count_by_type(self) -> dict[str, int]:
        query = select(events.c.type, func.count()).group_by(events.c.type).order_by(events.c.type)
        with self.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def count_received_since(self, since: float) -> int:
        query = select(func.count()).select_from(events).where(events.c.received_at > since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

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

    def iter_user_events(self, user_id: str, page_size: int = 5_000) -> Iterator[EventRow]:
        """Every event of the person, oldest first; keyset pages keep each query small."""
        after: tuple[float, str] | None = None
        while True:
            query = select(events).where(self._user_clause(user_id))
            if after is not None:
                query = query.where(
                    or_(
                        events.c.timestamp > after[0],
                        and_(events.c.timestamp == after[0], events.c.event_id > after[1]),
                    )
                )
            query = query.order_by(events.c.timestamp, events.c.event_id).limit(page_size)
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(query)]
            yield from rows
            if len(rows) < page_size:
                return
            after = (rows[-1]["timestamp"], rows[-1]["event_id"])

    def linked_anonymous_ids(self, user_id: str) -> set[str]:
        query = (
            select(events.c.anonymous_id)
            .where(events.c.user_id == user_id, events.c.anonymous_id.is_not(None))
            .distinct()
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars()) - {user_id}

    def expire_events(
        self, cutoffs: Mapping[str, float], default_cutoff: float | None, dry_run: bool = False
    ) -> dict[str, int]:
        """Per type, one DELETE whose row count is the exact number removed."""
        listed = list(cutoffs)
        with self.engine.begin() as conn:
            limits = dict(cutoffs)
            if default_cutoff is not None:
                others = select(events.c.type).where(events.c.timestamp < default_cutoff)
                if listed:
                    others = others.where(events.c.type.not_in(listed))
                for event_type in conn.execute(others.distinct()).scalars():
                    limits[event_type] = default_cutoff
            removed: dict[str, int] = {}
            for event_type, cutoff in sorted(limits.items()):
                condition = and_(events.c.type == event_type, events.c.timestamp < cutoff)
                if dry_run:
                    query = select(func.count()).select_from(events).where(condition)
                    count = int(conn.execute(query).scalar_one())
                else:
                    count = conn.execute(delete(events).where(condition)).rowcount or 0
                if count:
                    removed[event_type] = count
        return removed

    def erase_user(self, user_id: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(events).where(self._user_clause(user_id))).rowcount or 0
