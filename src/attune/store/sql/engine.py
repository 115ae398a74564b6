"""Engine creation and schema migration (Alembic) for the SQL stores."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.schema import CreateSchema

from attune.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_LONG_NUMBER = 20
_LONG_DIGITS = re.compile(rf"\d{{{_LONG_NUMBER}}}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the importer or an ingest request writes;
    # busy_timeout makes a second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def json_text(value: Any) -> str:
    """A JSON column's text: orjson's (several times faster than ``json`` on event
    contexts, log rows and catalog fields), else ``json``'s for what orjson refuses
    (integers beyond 64 bits). NaN is written as null, which PostgreSQL accepts."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """A JSON column's value (reading a whole catalog decodes one per field and item).

    orjson reads an integer beyond 64 bits as a float: text with a run of 20 digits
    goes to ``json``, which keeps it exact."""
    if isinstance(text, bytes):
        text = text.decode()
    if len(text) >= _LONG_NUMBER and _LONG_DIGITS.search(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except ValueError:  # NaN or Infinity, as ``json`` wrote them before
        return json.loads(text)


def make_engine(url: str, schema: str | None = None) -> Engine:
    """Create an engine for ``url``; SQLite files get WAL mode and their folder created.

    ``schema`` (PostgreSQL only): every connection's ``search_path``, so a workspace's
    tables live in a schema of their own; it is created when missing.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=json_text,
            json_deserializer=json_value,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "PostgreSQL needs psycopg: pip install 'attune[postgres]'"
            ) from exc
        connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            connect_args=connect_args,
            json_serializer=json_text,
            json_deserializer=json_value,
        )
        if schema:
            with engine.begin() as conn:
                conn.execute(CreateSchema(schema, if_not_exists=True))
        return engine
    raise ConfigurationError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


_MIGRATING = threading.Lock()
"""One migration at a time per process: Alembic keeps the running migration's context in
module globals, and two at once (the server's startup and its embedded worker's thread)
remove them from under each other (KeyError: 'script')."""


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    with _MIGRATING, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
