"""Ingestion: validate, deduplicate and durably store events, items and users."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from attune.config import Settings
from attune.errors import NotFoundError, ValidationError
from attune.ingest.bus import EventBus
from attune.ingest.schemas import ItemBatchEntry, ItemIn, UserIn
from attune.ingest.validation import (
    Errors,
    EventValidator,
    ParsedEvent,
    error_list,
    item_row,
    patched_row,
    user_row,
)
from attune.privacy.consent import (
    NO_TRACKING_CONSENT,
    ConsentedEvent,
    ConsentGate,
    anonymized,
    drop_live_state,
)
from attune.store.factory import Stores
from attune.store.protocols import EventRow, ItemRow, UserRow


@dataclass
class EventOutcome:
    """What happened to one submitted event."""

    index: int
    event_id: str | None
    status: str  # accepted | duplicate | rejected | dropped
    errors: Errors | None = None
    reason: str | None = None  # why an event was dropped
    anonymized: bool = False  # stored without the person's ids (no tracking consent)


@dataclass
class BatchOutcome:
    outcomes: list[EventOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


class IngestService:
    """The one way events, items and users enter Attune (API and importers alike)."""

    def __init__(self, settings: Settings, stores: Stores, bus: EventBus | None = None) -> None:
        self.settings = settings
        self.stores = stores
        self.bus = bus or EventBus()
        self.validator = EventValidator(settings)
        self.consent = ConsentGate(settings, stores.consent)

    def ingest_events(
        self, raw_events: Sequence[Any], loc_prefix: str = "events", *, untimed_ids: bool = False
    ) -> BatchOutcome:
        """Validate each event, store the new ones, and say what became of each.

        Accepted events are committed before this returns. An ``event_id`` already stored,
        or repeated earlier in the same batch, is a duplicate and changes nothing. Consent
        an event carries (``context.consent``) is recorded first; an event of someone
        without tracking consent is then ``dropped`` or, as configured, stored anonymised.
        ``untimed_ids`` (file imports): an event without a timestamp gets an id derived
        from its content without the time it is stamped with.
        """
        received_at = time.time()
        outcome = BatchOutcome()
        valid: list[tuple[EventOutcome, ParsedEvent]] = []
        for index, raw in enumerate(raw_events):
            event, errors = self.validator.parse(
                raw, (loc_prefix, index), received_at, untimed_ids=untimed_ids
            )
            if event is None:
                outcome.outcomes.append(EventOutcome(index, _raw_id(raw), "rejected", errors))
                continue
            result = EventOutcome(index, event.row["event_id"], "pending")
            outcome.outcomes.append(result)
            valid.append((result, event))
        tracked = self._judge_consent([event for _, event in valid])
        fresh: dict[str, EventRow] = {}
        for (result, event), allowed in zip(valid, tracked, strict=True):
            row = event.row
            if not allowed:
                if self.settings.untracked_events == "drop":
                    result.status, result.reason = "dropped", NO_TRACKING_CONSENT
                    continue
                row = anonymized(row, event.derived_id)
                result.event_id, result.anonymized = row["event_id"], True
            if row["event_id"] in fresh:
                result.status = "duplicate"
            else:
                fresh[row["event_id"]] = row
        inserted = self.stores.events.add_events(list(fresh.values()))
        for item in outcome.outcomes:
            if item.status == "pending":
                item.status = "accepted" if item.event_id in inserted else "duplicate"
        self.bus.publish([row for event_id, row in fresh.items() if event_id in inserted])
        return outcome

    def _judge_consent(self, events: list[ParsedEvent]) -> list[bool]:
        """Apply the consent events carry (not that of duplicates), then judge each."""
        carrying = [e.row["event_id"] for e in events if e.consent is not None]
        stored = self.stores.events.existing_event_ids(carrying) if carrying else set()
        seen: set[str] = set()
        judged = []
        for event in events:
            event_id = event.row["event_id"]
            fresh = event_id not in stored and event_id not in seen
            seen.add(event_id)
            ids = tuple(i for i in (event.row["user_id"], event.row["anonymous_id"]) if i)
            judged.append(ConsentedEvent(ids, event.consent if fresh else None))
        verdicts = self.consent.judge(judged)
        refused: dict[str, bool] = {}  # whose consent changed: refused personalisation?
        for event in judged:
            if event.update is not None:  # whether or not the event itself is kept
                refusing = event.update.personalization is False
                for person in event.person_ids:
                    refused[person] = refused.get(person, False) or refusing
        for person, refusing in refused.items():  # once per person and batch
            drop_live_state(self.stores, person, refusing)
        return verdicts

    def put_item(self, item_id: str, item: ItemIn) -> dict[str, Any]:
        row = item_row(item_id, item)
        self.stores.catalog.upsert_items([row])
        return row

    def patch_item(self, item_id: str, patch: Mapping[str, Any]) -> ItemRow:
        """Change some of a stored item's fields (JSON Merge Patch, RFC 7396: a field given
        replaces the stored one, ``null`` resets it, ``properties`` and ``translations``
        merge key by key); the rest keep their values.

        Raises:
            NotFoundError: the catalog does not hold the item.
            ValidationError: the patched item is not a valid item (details under ``body``).
        """
        problems: list[dict[str, Any]] = []

        def change(row: ItemRow) -> ItemRow | None:
            try:
                return patched_row(row, patch, time.time())
            except pydantic.ValidationError as exc:
                problems.extend(error_list(exc, ("body",)))
                return None

        written = self.stores.catalog.patch_items([item_id], change)
        if problems:
            raise ValidationError("the patched item is not valid", details=problems)
        if not written:
            raise NotFoundError(f"item {item_id!r} is not in the catalog: PUT it first")
        return written[0]

    def put_items(self, raw_items: Sequence[Any]) -> tuple[list[ItemRow], list[dict[str, Any]]]:
        """Validate and upsert a batch of items; returns (rows stored, per-item results)."""
        now = time.time()
        rows, results = [], []
        for index, raw in enumerate(raw_items):
            try:
                entry = ItemBatchEntry.model_validate(raw)
            except pydantic.ValidationError as exc:
                results.append(
                    {
                        "index": index,
                        "status": "rejected",
                        "errors": error_list(exc, ("items", index)),
                    }
                )
                continue
            rows.append(item_row(entry.item_id, entry, now))
            results.append({"index": index, "item_id": entry.item_id, "status": "accepted"})
        self.stores.catalog.upsert_items(rows)
        return rows, results

    def user_row(self, user_id: str, user: UserIn, now: float | None = None) -> UserRow:
        """The profile row of external ``user_id``: id pseudonymised, traits scrubbed."""
        row = user_row(self.validator.user_key(user_id), user, now)
        row["traits"] = self.validator.scrub(row["traits"])
        return row

    def put_user(self, user_id: str, user: UserIn) -> dict[str, Any]:
        row = self.user_row(user_id, user)
        self.stores.users.upsert_users([row])
        return self.stores.users.get_user(row["user_id"]) or row


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str | int):
        return str(raw["event_id"])
    return None
