"""Access and portability: everything held about one person, as one JSON document.

The document holds their profile (traits), consent, stated preferences, every event
(read in pages, no cap) of their user id and of the anonymous ids linked to it, and
the recommendations they were shown with the model version behind each. Times are ISO
8601 UTC; where ids are pseudonymised, the person's own id is shown for their stored one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from attune.privacy.erasure import person_events, person_ids
from attune.store.factory import Stores

FORMAT_VERSION = 1
TIME_FIELDS = frozenset({"timestamp", "received_at", "created_at", "updated_at", "at"})
ID_FIELDS = frozenset({"user_id", "anonymous_id"})


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _render(row: dict[str, Any], stored_id: str, external_id: str) -> dict[str, Any]:
    """A stored row as exported: times as ISO 8601, the person's stored id as theirs."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in TIME_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
            value = _iso(float(value))
        elif key in ID_FIELDS and value == stored_id:
            value = external_id
        out[key] = value
    return out


def export_person(stores: Stores, stored_id: str, external_id: str) -> dict[str, Any] | None:
    """Everything held about the person, or None when nothing is."""
    ids = person_ids(stores, stored_id)
    events = [_render(r, stored_id, external_id) for r in person_events(stores, ids)]
    profile = stores.users.get_user(stored_id)
    consent = stores.consent.get(stored_id)
    preferences_store = getattr(stores, "preferences", None)
    preferences = preferences_store.get(stored_id) if preferences_store is not None else None
    logs_store = getattr(stores, "recommendation_logs", None)
    logs = logs_store.for_user(stored_id) if logs_store is not None else []
    if not (events or profile or consent or preferences or logs):
        return None
    return {
        "format": FORMAT_VERSION,
        "user_id": external_id,
        "exported_at": _iso(time.time()),
        "profile": _render(profile, stored_id, external_id) if profile else None,
        "consent": (
            {
                "tracking": consent.tracking,
                "personalization": consent.personalization,
                "source": consent.source,
                "updated_at": _iso(consent.updated_at),
            }
            if consent
            else None
        ),
        "preferences": preferences,
        "anonymous_ids": ids[1:],
        "events": events,
        "recommendations": [_render(r, stored_id, external_id) for r in logs],
    }
