"""Ingestion: validate, deduplicate and durably store events, items and users."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from attune.config import Settings
from attune.ingest.bus import EventBus
from attune.ingest.schemas import ItemBatchEntry, ItemIn, UserIn
from attune.ingest.validation import Errors, EventValidator, error_list, item_row, user_row
from attune.store.factory import Stores
from attune.store.protocols import EventRow


@dataclass
class EventOutcome:
    """What happened to one submitted event."""

    index: int
    event_id: str | None
    status: str  # accepted | duplicate | rejected
    errors: Errors | None = None


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

    def ingest_events(self, raw_events: Sequence[Any], loc_prefix: str = "events") -> BatchOutcome:
        """Validate each event, store the new ones, and say what became of each.

        Accepted events are committed before this returns. An ``event_id`` already stored,
        or repeated earlier in the same batch, is a duplicate and changes nothing.
        """
        received_at = time.time()
        outcome = BatchOutcome()
        fresh: dict[str, EventRow] = {}
        for index, raw in enumerate(raw_events):
            row, errors = self.validator.to_row(raw, (loc_prefix, index), received_at)
            if row is None:
                outcome.outcomes.append(EventOutcome(index, _raw_id(raw), "rejected", errors))
                continue
            event_id = row["event_id"]
            status = "duplicate" if event_id in fresh else "pending"
            fresh.setdefault(event_id, row)
            outcome.outcomes.append(EventOutcome(index, event_id, status))
        inserted = self.stores.events.add_events(list(fresh.values()))
        for item in outcome.outcomes:
            if item.status == "pending":
                item.status = "accepted" if item.event_id in inserted else "duplicate"
        self.bus.publish([row for event_id, row in fresh.items() if event_id in inserted])
        return outcome

    def put_item(self, item_id: str, item: ItemIn) -> dict[str, Any]:
        row = item_row(item_id, item)
        self.stores.catalog.upsert_items([row])
        return row

    def put_items(self, raw_items: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
        """Validate and upsert a batch of items; returns (stored, per-item results)."""
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
        return len(rows), results

    def put_user(self, user_id: str, user: UserIn) -> dict[str, Any]:
        row = user_row(user_id, user)
        self.stores.users.upsert_users([row])
        return self.stores.users.get_user(user_id) or row


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str | int):
        return str(raw["event_id"])
    return None
