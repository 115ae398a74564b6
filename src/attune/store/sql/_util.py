"""Small helpers shared by the SQL stores: dialect-aware inserts, cursors, chunking."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table
from sqlalchemy.sql.dml import Insert

CHUNK = 5_000  # rows per statement batch; keeps parameter lists well under backend limits

_held: ContextVar[Connection | None] = ContextVar("attune_held_connection", default=None)


@contextmanager
def held_connection(engine: Engine) -> Iterator[None]:
    """Let the reads inside share one connection of ``engine`` (:func:`reading`).

    A request reads a person's history, preferences, consent and profile in a row;
    checking a connection out of the pool and back costs more than such a read, so
    they take one between them. Per thread or task (a context variable)."""
    if _held.get() is not None:
        yield
        return
    with engine.connect() as conn:
        token = _held.set(conn)
        try:
            yield
        finally:
            _held.reset(token)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for a read: the held one (:func:`held_connection`) when it belongs
    to ``engine``, else a fresh one from the pool."""
    held = _held.get()
    if held is not None and held.engine is engine:
        yield held
        return
    with engine.connect() as conn:
        yield conn


class PreparedRead:
    """A SELECT read on every request, run with as little machinery as the backend allows.

    On SQLite the statement is compiled once and run on the driver's cursor of the
    SQLAlchemy connection, with each column's result conversion applied (JSON decoded,
    booleans as bool): the same rows as ``conn.execute``, without its per-call setup,
    which costs several times what SQLite takes to answer a keyed read. Other backends
    go through ``conn.execute``."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.keys = [c.key for c in statement.selected_columns]
        self._sqlite: tuple[str, list[str], dict[str, Any], list[Any]] | None = None

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        dialect = conn.dialect
        if dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.statement, params)]
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=dialect)
            names = list(compiled.positiontup or [])
            processors = [
                c.type.dialect_impl(dialect).result_processor(dialect, None)
                for c in self.statement.selected_columns
            ]
            # parameters the statement sets itself (e.g. the OFFSET 0 that goes with LIMIT)
            fixed = dict(compiled.params)
            self._sqlite = (compiled.string, names, fixed, processors)
        sql, names, fixed, processors = self._sqlite
        values = [params[n] if n in params else fixed[n] for n in names]
        cursor = conn.connection.driver_connection.execute(sql, values)
        found = cursor.fetchall()
        if not any(processors):
            return found  # type: ignore[no-any-return]
        return [
            tuple(v if f is None else f(v) for f, v in zip(processors, row, strict=True))
            for row in found
        ]

    def mapping(self, conn: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first row as a dict by column key (None when there is none)."""
        found = self.rows(conn, params)
        return dict(zip(self.keys, found[0], strict=True)) if found else None


def dialect_insert(engine: Engine, table: Table) -> Insert:
    """An INSERT that knows ON CONFLICT for this engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    from attune.errors import ValidationError

    invalid = ValidationError(
        "invalid cursor", details=[{"loc": ["query", "cursor"], "msg": "not a cursor"}]
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # validate=True: a cursor with characters outside the alphabet is not silently
        # shortened to some other position in the listing
        last_id = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    # no id is empty or holds NUL (PostgreSQL text cannot even be compared with one)
    if not last_id or "\x00" in last_id:
        raise invalid
    return last_id
