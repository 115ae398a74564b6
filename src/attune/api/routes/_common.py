"""Shared pieces of the route modules: path parameters, time rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path

from attune.ingest.schemas import MAX_ID_LENGTH

NO_NUL = r"^[^\x00]+$"  # PostgreSQL text cannot hold NUL
UserIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL, description="External user id"),
]
ItemIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL, description="External item id"),
]


def iso(seconds: float | None) -> datetime | None:
    """UTC Unix seconds as an aware datetime (rendered as ISO 8601)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def item_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "created_at": iso(row.get("created_at")),
        "updated_at": iso(row["updated_at"]),
        "categories": row.get("categories") or [],
        "tags": row.get("tags") or [],
    }


def user_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "traits": row.get("traits") or {},
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def event_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "timestamp": iso(row["timestamp"]),
        "received_at": iso(row["received_at"]),
        "context": row.get("context") or {},
        "properties": row.get("properties") or {},
    }
