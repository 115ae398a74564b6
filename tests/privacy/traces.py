"""Look for a person's id everywhere Attune keeps data: tables, cache, sessions, artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import Engine, String, cast, column, func, inspect, select, table


def sql_traces(engine: Engine, needle: str) -> list[str]:
    """``table.column=count`` for every column of every table whose text holds ``needle``."""
    found = []
    inspector = inspect(engine)
    with engine.connect() as conn:
        for name in inspector.get_table_names():
            for spec in inspector.get_columns(name):
                col = column(spec["name"])
                query = (
                    select(func.count())
                    .select_from(table(name, col))
                    .where(cast(col, String).like(f"%{needle}%"))
                )
                count = conn.execute(query).scalar_one()
                if count:
                    found.append(f"{name}.{spec['name']}={count}")
    return found


def _forms(needle: str) -> list[bytes]:
    """How the id may sit in bytes: UTF-8, percent-escaped, and numpy's UTF-32 strings."""
    return [needle.encode(), quote(needle, safe="").encode(), needle.encode("utf-32-le")]


def artifact_traces(root: Path, needle: str) -> list[str]:
    """Files under ``root`` holding ``needle`` (raw bytes, or a string array of an .npz)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(form in data for form in _forms(needle)):
            found.append(str(path.relative_to(root)))
        elif path.suffix == ".npz":  # members are zip-compressed only with savez_compressed
            with np.load(path, allow_pickle=False) as arrays:
                for key in arrays.files:
                    values = arrays[key]
                    if values.dtype.kind == "U" and any(needle in str(v) for v in values.ravel()):
                        found.append(f"{path.relative_to(root)}:{key}")
    return found


def cache_traces(cache: Any, needle: str) -> list[str]:
    """Keys of a :class:`MemoryCache` or :class:`RedisCache` naming ``needle``."""
    escaped = quote(needle, safe="")
    return [k for k in cache.list_keys() if needle in k or escaped in k]


def redis_traces(client: Any, prefix: str, needle: str) -> list[str]:
    """Every Redis key under ``prefix`` whose name or value holds ``needle``."""
    found = []
    forms = _forms(needle)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "hash":
            values = [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        if any(form in blob for form in forms for blob in [key, *values]):
            found.append(key.decode())
    return found
