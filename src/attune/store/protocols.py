"""Storage contracts, split by kind (events, catalog, users, model versions, artifacts, cache).

Each backend implements these Protocols; one contract test suite runs against every
backend. Every kind implements ``erase_user`` so one erasure request fans out everywhere.
Ids are external ids (strings) throughout; times are UTC Unix seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pandas as pd

if TYPE_CHECKING:
    from attune.auth.audit import AuditEntry
    from attune.auth.keys import ApiKey

EventRow = dict[str, Any]
"""One event as stored: the columns of the ``events`` table."""

ItemRow = dict[str, Any]
UserRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """What a user did with an item: the part of an event the decision engine needs.

    ``context`` is the event's stored context where the reader asked for it (erasure
    does: models that profile contexts subtract it); None otherwise. Equality ignores it.
    """

    item_id: str
    type: str
    value: float | None
    timestamp: float
    context: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Consent:
    """A person's consent as recorded (see :mod:`attune.privacy.consent`).

    ``source`` says who set it last: ``api`` (``PUT /v1/users/{id}/consent``) or ``event``
    (an event's ``context.consent``).
    """

    user_id: str
    tracking: bool
    personalization: bool
    source: str
    updated_at: float


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
        """The user's events that name an item, oldest first (the newest ``limit``); equal
        timestamps in arrival order (received_at, then event_id)."""

    def user_histories(
        self, user_ids: Sequence[str], limit: int | None = None
    ) -> dict[str, list[HistoryEvent]]:
        """:meth:`user_history` for many users at once (users without events are absent)."""

    def user_item_marks(self, user_id: str) -> list[HistoryEvent]:
        """The newest event of each (item, type) in the user's whole history (``value``
        None), in no particular order: what rules over everything a person has had
        (seen items, "not interested") read when their history was read with a limit."""

    def item_counts(self, since: float, until: float | None = None) -> dict[str, int]:
        """Distinct people per item with an event in [since, until)."""

    def latest_timestamp(self) -> float | None:
        """The newest event time (None when there are no events)."""

    def user_events(self, user_id: str, limit: int = 100) -> list[EventRow]:
        """The user's full events, newest first."""

    def interaction_frame(
        self, types: Sequence[str] | None = None, with_context: bool = False
    ) -> pd.DataFrame:
        """All events with a user and an item: columns user_id, item_id, type, value,
        timestamp (and ``context``, a dict or None, when asked), ordered by timestamp,
        ties in arrival order (received_at, then event_id) — the order of
        :meth:`user_history`, so training and serving order equal timestamps alike."""

    def count_by_type(self) -> dict[str, int]: ...

    def count_received_since(self, since: float) -> int:
        """Events the server accepted after ``since`` (UTC Unix seconds, ``received_at``)."""

    def count_users(self) -> int:
        """Distinct people (user or anonymous id) with at least one event."""

    def count_items(self) -> int:
        """Distinct items named by at least one event."""

    def iter_user_events(self, user_id: str, page_size: int = 5_000) -> Iterator[EventRow]:
        """Every event of ``user_id`` (as user or anonymous id), oldest first, read in pages."""

    def linked_anonymous_ids(self, user_id: str) -> set[str]:
        """Anonymous ids that appear on events together with ``user_id``."""

    def expire_events(
        self, cutoffs: Mapping[str, float], default_cutoff: float | None, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete events older (by ``timestamp``) than their type's cutoff.

        ``cutoffs`` maps an event type to a UTC Unix time; types not in it use
        ``default_cutoff`` (None: kept). Returns how many were (or, with ``dry_run``,
        would be) deleted per type.
        """

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class CatalogStore(Protocol):
    def upsert_items(self, rows: Sequence[ItemRow]) -> int: ...

    def patch_items(
        self, item_ids: Sequence[str], change: Callable[[ItemRow], ItemRow | None]
    ) -> list[ItemRow]:
        """Replace each stored item of ``item_ids`` by ``change(row)`` (None: keep it), in
        one transaction that other catalog writes wait for; the rows written."""

    def get_item(self, item_id: str) -> ItemRow | None: ...

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRow]: ...

    def list_items(self, cursor: str | None = None, limit: int = 100) -> Page: ...

    def delete_item(self, item_id: str, deleted_at: float | None = None) -> bool:
        """Remove the item and remember it was deleted (:meth:`deleted_item_ids`), also
        when the catalog did not hold it; whether the catalog held it."""

    def delete_items(self, item_ids: Sequence[str], deleted_at: float | None = None) -> set[str]:
        """:meth:`delete_item` for many ids at once; the ids the catalog held."""

    def deleted_item_ids(self) -> set[str]:
        """Items deleted and not written again since."""

    def unavailable_item_ids(self) -> set[str]:
        """Items never to recommend: stored with ``available = false``, or deleted."""

    def content_stamp(self) -> str:
        """An opaque value that changes whenever any item is written or deleted; cheap to
        read, so caches of :meth:`item_frame` can tell when to re-read it."""

    def changes_since(self, stamp: str, limit: int = 10_000) -> tuple[str, list[str]] | None:
        """The ids of the items written or deleted since the state ``stamp`` (a
        :meth:`content_stamp`) and the stamp of the state they lead to, so a cache of
        :meth:`item_frame` can re-read just those; None when they cannot be told (then
        re-read it all)."""

    def item_frame(self, item_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per item (of ``item_ids`` alone when given): columns item_id, title,
        text, categories, tags, available, price, regions, language, created_at (UTC Unix
        seconds), properties."""

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
        """Store a new version (assigning its ``seq``) and return it; a new champion
        retires the one before (status ``retired``)."""

    def latest(self, status: str = "champion") -> ModelVersion | None: ...

    def get(self, version_id: str) -> ModelVersion | None: ...

    def list_versions(self, limit: int = 50) -> list[ModelVersion]: ...

    def set_status(self, version_ids: Sequence[str], status: str) -> int:
        """Give these versions ``status`` (never the serving champion's); rows changed."""

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class ArtifactStore(Protocol):
    def path_for(self, version_id: str) -> Path:
        """A local folder to write a new version's files into."""

    def open(self, uri: str) -> Path:
        """A local folder holding the files of the artifact at ``uri``."""

    def uri_for(self, version_id: str) -> str: ...

    def delete(self, uri: str) -> int:
        """Remove the artifact at ``uri``; the bytes freed (0 when it was gone)."""

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class CacheStore(Protocol):
    def get(self, key: str) -> Any | None: ...

    def generation(self, key: str) -> Any:
        """The state of the person ``key`` is about; it moves on whenever their entries
        are dropped (:meth:`delete_prefix` under their prefix)."""
        ...

    def set(self, key: str, value: Any, ttl_seconds: float, generation: Any = None) -> bool:
        """Store ``value`` (with ``generation``: only if the person's still matches)."""
        ...

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

    def expire(self, cutoff: float, dry_run: bool = False) -> int:
        """Delete (``dry_run``: count) the rows logged before ``cutoff`` (Unix seconds)."""
        ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class SessionStore(Protocol):
    """Each person's live recent events (in-process or Redis)."""

    def record(self, user_id: str, events: Sequence[Any]) -> None: ...

    def recent(self, user_id: str) -> list[Any]: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class ConsentStore(Protocol):
    """Per-person consent (tracking, personalisation); absent means "never stated"."""

    def get(self, user_id: str) -> Consent | None: ...

    def get_many(self, user_ids: Sequence[str]) -> dict[str, Consent]: ...

    def set(
        self,
        user_id: str,
        *,
        tracking: bool | None = None,
        personalization: bool | None = None,
        source: str = "api",
        default: bool = True,
    ) -> Consent:
        """Record what is given; what is not keeps its stored value (or ``default``)."""

    def set_many(
        self,
        updates: Sequence[tuple[str, bool | None, bool | None]],
        source: str,
        default: bool = True,
    ) -> int:
        """Apply ``(user_id, tracking, personalization)`` updates in order, in one go."""

    def user_ids(
        self, *, tracking: bool | None = None, personalization: bool | None = None
    ) -> set[str]:
        """People whose record has the given values (None: any)."""

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class KeyStore(Protocol):
    """API keys (see :mod:`attune.auth`): metadata and the token's hash, never a token.

    Keys of every workspace live in the default workspace's store.
    """

    def add(self, key: ApiKey, secret_hash: str) -> None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def get_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None: ...

    def list_keys(
        self, workspace: str | None = None, *, include_revoked: bool = True
    ) -> list[ApiKey]: ...

    def revoke(self, key_id: str, at: float) -> ApiKey | None:
        """Mark the key revoked (the first revocation time stays); None if unknown."""

    def touch(self, key_id: str, at: float) -> None: ...

    def erase_user(self, user_id: str) -> int: ...


@runtime_checkable
class AuditStore(Protocol):
    """The audit log of administrative actions (see :mod:`attune.auth.audit`)."""

    def record(
        self,
        workspace: str,
        actor: str | None,
        action: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append an entry; never put a secret or a raw user id in it."""

    def list(
        self,
        limit: int = 100,
        *,
        workspace: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first; ``before_id`` pages on to older entries; with ``after_id``, the
        entries after it, oldest first."""

    def user_target(self, user_id: str) -> str:
        """A keyed hash that stands for ``user_id`` as an audit target."""

    def erase_user(self, user_id: str) -> int: ...
