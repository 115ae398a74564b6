"""Turn raw event, item and user payloads into store rows, or into precise errors.

Shared by the REST API and the bulk importers, so a row rejected by one is rejected by
the other for the same reason.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from attune.config import Settings
from attune.ingest.schemas import EventIn, ItemIn, UserIn
from attune.privacy.consent import ConsentIn
from attune.privacy.pseudonyms import Pseudonymizer
from attune.privacy.scrubbing import scrubber
from attune.store.protocols import EventRow, ItemRow, UserRow

Errors = list[dict[str, Any]]


def error_list(exc: pydantic.ValidationError, prefix: tuple[Any, ...] = ()) -> Errors:
    """Pydantic's errors as ``{"loc": [...], "msg": ...}`` with a location prefix."""
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


UNTIMED = "untimed"
"""What stands for the time in the derived id of a file row without a timestamp."""


def derived_event_id(event: EventIn, timestamp: float | None) -> str:
    """A content hash: the same event sent twice without an id gets the same id.

    ``timestamp`` None: the id leaves time out (a file row without one, stamped with the
    import time, is then the same event on every import).
    """
    parts = [
        event.user_id or "",
        event.anonymous_id or "",
        event.item_id or "",
        event.type,
        repr(event.value),
        UNTIMED if timestamp is None else repr(round(timestamp, 6)),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return "h-" + digest[:40]


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A valid event: its store row, the consent it carries, whether its id was derived."""

    row: EventRow
    consent: ConsentIn | None = None
    derived_id: bool = False


class EventValidator:
    """Validates one event at a time against the schema and the configured event types.

    Valid events come out as store rows with user and anonymous ids pseudonymised and
    personal data scrubbed from ``context`` and ``properties`` (as configured); consent
    carried in ``context.consent`` is taken out of the context and returned beside the row.
    """

    def __init__(self, settings: Settings) -> None:
        self.known_types = set(settings.event_type_weights)
        self.allow_unknown = settings.allow_unknown_event_types
        self.user_key = Pseudonymizer.from_settings(settings)
        self.scrub = scrubber(settings.scrub_personal_data)

    def to_row(
        self, raw: Any, prefix: tuple[Any, ...] = (), received_at: float | None = None
    ) -> tuple[EventRow | None, Errors]:
        """Return ``(row, [])`` for a valid event or ``(None, errors)``."""
        parsed, errors = self.parse(raw, prefix, received_at)
        return (parsed.row if parsed else None), errors

    def parse(
        self,
        raw: Any,
        prefix: tuple[Any, ...] = (),
        received_at: float | None = None,
        *,
        untimed_ids: bool = False,
    ) -> tuple[ParsedEvent | None, Errors]:
        """Return ``(parsed, [])`` for a valid event or ``(None, errors)``.

        An event without a timestamp is stamped ``received_at``; with ``untimed_ids`` (file
        imports) its derived id leaves that time out, so re-importing it adds nothing.
        """
        if not isinstance(raw, Mapping):
            return None, [
                {"loc": list(prefix), "msg": "an event must be a JSON object", "type": "type_error"}
            ]
        raw, consent, errors = _take_consent(raw, prefix)
        try:
            event = EventIn.model_validate(raw)
        except pydantic.ValidationError as exc:
            return None, errors + error_list(exc, prefix)
        if errors:
            return None, errors
        if event.type not in self.known_types and not self.allow_unknown:
            known = ", ".join(sorted(self.known_types))
            return None, [
                {
                    "loc": [*prefix, "type"],
                    "msg": f"unknown event type {event.type!r}; known types: {known}",
                    "type": "unknown_event_type",
                }
            ]
        now = received_at if received_at is not None else time.time()
        timestamp = event.timestamp.timestamp() if event.timestamp else now
        identity_time = None if untimed_ids and event.timestamp is None else timestamp
        if self.user_key.enabled:
            event = event.model_copy(
                update={
                    "user_id": self.user_key.optional(event.user_id),
                    "anonymous_id": self.user_key.optional(event.anonymous_id),
                }
            )
        row = {
            "event_id": event.event_id or derived_event_id(event, identity_time),
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
            "item_id": event.item_id,
            "type": event.type,
            "value": event.value,
            "timestamp": timestamp,
            "received_at": now,
            "context": self.scrub(event.context) or None,
            "properties": self.scrub(event.properties) or None,
            "recommendation_id": event.recommendation_id,
        }
        return ParsedEvent(row, consent, derived_id=event.event_id is None), []


def _take_consent(
    raw: Mapping[str, Any], prefix: tuple[Any, ...]
) -> tuple[Mapping[str, Any], ConsentIn | None, Errors]:
    """Split ``context.consent`` (an object, unlike other context values) from an event."""
    context = raw.get("context")
    if not isinstance(context, Mapping) or "consent" not in context:
        return raw, None, []
    rest = {**raw, "context": {k: v for k, v in context.items() if k != "consent"}}
    try:
        return rest, ConsentIn.model_validate(context["consent"]), []
    except pydantic.ValidationError as exc:
        return rest, None, error_list(exc, (*prefix, "context", "consent"))


def item_row(item_id: str, item: ItemIn, now: float | None = None) -> ItemRow:
    """The catalog row for a validated item."""
    return {
        "item_id": item_id,
        "title": item.title,
        "text": item.text,
        "categories": list(dict.fromkeys(item.categories)),
        "tags": list(dict.fromkeys(item.tags)),
        "language": item.language,
        "translations": {k: v.model_dump(exclude_none=True) for k, v in item.translations.items()}
        or None,
        "regions": item.regions,
        "available": item.available,
        "price": item.price,
        "created_at": item.created_at.timestamp() if item.created_at else None,
        "properties": item.properties or None,
        "updated_at": now if now is not None else time.time(),
    }


MERGED_FIELDS = ("properties", "translations")
"""Item fields a merge patch changes key by key (the others it replaces whole)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON Merge Patch ``patch`` applied (RFC 7396)."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patched_row(row: ItemRow, patch: Mapping[str, Any], now: float) -> ItemRow:
    """The stored item ``row`` with ``patch`` applied, validated as a whole item.

    Raises:
        pydantic.ValidationError: the result is not a valid item.
    """
    fields = {k: v for k, v in row.items() if k not in ("item_id", "updated_at") and v is not None}
    merged = {k: v for k, v in fields.items() if k not in patch or k in MERGED_FIELDS}
    for key, value in patch.items():
        if value is not None:
            merged[key] = merge_patch(merged.get(key), value) if key in MERGED_FIELDS else value
        else:
            merged.pop(key, None)
    return item_row(str(row["item_id"]), ItemIn.model_validate(merged), now)


def user_row(user_id: str, user: UserIn, now: float | None = None) -> UserRow:
    stamp = now if now is not None else time.time()
    return {"user_id": user_id, "traits": user.traits, "created_at": stamp, "updated_at": stamp}
