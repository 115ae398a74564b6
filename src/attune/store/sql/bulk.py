"""Fast idempotent bulk insert of events: stage rows, then one INSERT ... SELECT.

Rows go into a temporary staging table (PostgreSQL: ``COPY``; SQLite: ``executemany``),
then a single ``INSERT INTO events SELECT ... ON CONFLICT DO NOTHING RETURNING event_id``
moves the new ones across and names exactly which were new. One statement decides, so
the answer is exact even with concurrent writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, text

from attune.store.protocols import EventRow
from attune.store.sql.engine import json_text
from attune.store.sql.schema import events

STAGING = "staging_events"
COLUMNS = [c.name for c in events.columns]
JSON_COLUMNS = {"context", "properties"}


def _staging_table() -> Table:
    # same columns as events but no key: duplicates are settled by the final INSERT
    return Table(
        STAGING,
        MetaData(),
        *[Column(c.name, c.type, nullable=True) for c in events.columns],
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


STAGING_TABLE = _staging_table()


def _stage_postgres(conn: Connection, rows: Sequence[EventRow]) -> None:
    STAGING_TABLE.create(conn)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {STAGING} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_copy_value(name, row.get(name)) for name in COLUMNS])


def _copy_value(name: str, value: Any) -> Any:
    if name in JSON_COLUMNS and value is not None:
        return json_text(value)
    return value


def _stage_sqlite(conn: Connection, rows: Sequence[EventRow]) -> None:
    STAGING_TABLE.create(conn, checkfirst=True)
    conn.execute(STAGING_TABLE.delete())
    conn.execute(STAGING_TABLE.insert(), [{c: row.get(c) for c in COLUMNS} for row in rows])


def insert_new_events(conn: Connection, rows: Sequence[EventRow]) -> set[str]:
    """Insert rows whose event_id is not stored yet; return the ids inserted."""
    if conn.dialect.name == "postgresql":
        _stage_postgres(conn, rows)
    else:
        _stage_sqlite(conn, rows)
    names = ", ".join(COLUMNS)
    result = conn.execute(
        text(
            f"INSERT INTO events ({names}) SELECT {names} FROM {STAGING} WHERE true "  # noqa: S608
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
    )
    inserted = {row[0] for row in result}
    if conn.dialect.name != "postgresql":
        conn.execute(STAGING_TABLE.delete())
    return inserted
