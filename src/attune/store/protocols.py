"""Storage contracts, split by kind (events, catalog, users, model versions, artifacts, cache).

Each backend implements these Protocols; one contract test suite runs against every
backend. Every kind implements ``erase_user`` so one erasure request fans out everywhere.
Ids are external ids (strings) throughout; times are UTC Unix seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

EventRow = dict[str, Any]
"""One event as stored: the columns of the ``events`` table."""

ItemRow = dict[str, Any]
UserRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """What a user did with an item: the part of an event the decision engine needs."""

    item_id: str
    type: str
    value: float | None
    timestamp: float


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_cursor`` is None on the last page."""

    data: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(slots=True)
class ModelVersion:
    """A trained model as registered: what it is, what data it saw, where its files are."""

    version_id: str
    algorithm: str
    params: dict[str, Any]
    data_window: dict[str, Any]
    artifact_uri: str
    status: str = "champion"
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    seq: int = 0


@runtime_checkable
class EventStore(Protocol):
    def add_events(self, rows: Sequence[EventRow]) -> set[str]:
        """Insert rows whose ``event_id`` is new; return the ids actually inserted.

        Rows already stored (same ``event_id``) are left untouched. Committed on return.
        """

    def existing_event_ids(self, event_ids: Iterable[str]) -> set[str]: ...

    def user_history(self, user_id: str, limit: int | None = None) -> list[HistoryEvent]:
        """The user's events that name an item, oldest first (the newest ``limit``)."""

    def user_histories(
        self, user_ids: Sequence[str], limit: int | None = None
    ) -> dict[str, list[HistoryEvent]]:
        """:meth:`user_history` for many users at once (users without events are absent)."""

    def user_events(self, user_id: str, limit: int = 100) -> list[EventRow]:
        """The user's full events, newest first."""

    def interaction_frame(self, types: Sequence[str] | None = None) -> pd.DataFrame:
        """All events with a user and an item: columns user_id, item_id, type, value, timestamp."""

    def count_by_type(self) -> dict[str, int]: ...

    def count_users(self) -> int:
        """Distinct people (user or anonymous id) with at least one event."""

    def count_items(self) -> int:
        """Distinct items named by at least one event."""

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class CatalogStore(Protocol):
    def upsert_items(self, rows: Sequence[ItemRow]) -> int: ...

    def get_item(self, item_id: str) -> ItemRow | None: ...

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRow]: ...

    def list_items(self, cursor: str | None = None, limit: int = 100) -> Page: ...

    def delete_item(self, item_id: str) -> bool: ...

    def unavailable_item_ids(self) -> set[str]:
        """Items stored with ``available = false`` (never recommended)."""

    def content_stamp(self) -> str:
        """An opaque value that changes whenever any item is written or deleted; cheap to
        read, so caches of :meth:`item_frame` can tell when to re-read it."""

    def item_frame(self) -> pd.DataFrame:
        """One row per item: columns item_id, title, text, categories, tags, available,
        price, regions, language, created_at (UTC Unix seconds), properties."""

    def count(self) -> int: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class UserStore(Protocol):
    def upsert_users(self, rows: Sequence[UserRow]) -> int: ...

    def get_user(self, user_id: str) -> UserRow | None: ...

    def list_users(self, cursor: str | None = None, limit: int = 100) -> Page: ...

    def count(self) -> int: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class ModelVersionStore(Protocol):
    def register(self, version: ModelVersion) -> ModelVersion:
        """Store a new version (assigning its ``seq``) and return it."""

    def latest(self, status: str = "champion") -> ModelVersion | None: ...

    def get(self, version_id: str) -> ModelVersion | None: ...

    def list_versions(self, limit: int = 50) -> list[ModelVersion]: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class ArtifactStore(Protocol):
    def path_for(self, version_id: str) -> Path:
        """A local folder to write a new version's files into."""

    def open(self, uri: str) -> Path:
        """A local folder holding the files of the artifact at ``uri``."""

    def uri_for(self, version_id: str) -> str: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class CacheStore(Protocol):
    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, ttl_seconds: float) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class PreferenceStore(Protocol):
    """Stated preferences per person (see :class:`attune.engine.preferences.Preferences`)."""

    def get(self, user_id: str) -> dict[str, Any] | None: ...

    def put(self, user_id: str, preferences: dict[str, Any]) -> None: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class NamedConfigStore(Protocol):
    """Named configuration documents (placements, segments)."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...

    def put(self, name: str, **values: Any) -> dict[str, Any]: ...

    def delete(self, name: str) -> bool: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class RecommendationLogStore(Protocol):
    """What was recommended to whom (for attribution, export and erasure)."""

    def add(self, rows: Sequence[dict[str, Any]]) -> int: ...

    def get(self, recommendation_id: str) -> dict[str, Any] | None: ...

    def for_user(self, user_id: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class SessionStore(Protocol):
    """Each person's live recent events (in-process or Redis)."""

    def record(self, user_id: str, events: Sequence[Any]) -> None: ...

    def recent(self, user_id: str) -> list[Any]: ...

    def erase_user(self, user_id: str) -> int: ...
