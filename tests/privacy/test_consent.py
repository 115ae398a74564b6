"""Consent: the store contract, and what ingestion keeps and drops, on each backend."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from attune.config import Settings
from attune.ingest.service import IngestService
from attune.privacy.consent import NO_TRACKING_CONSENT
from attune.store.factory import Stores
from attune.store.sql.schema import events as events_table

T0 = 1_700_000_000


def view(user: str, item: str, k: int = 0, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": "view", "timestamp": T0 + k, **extra}


def statuses(outcome: Any) -> list[str]:
    return [o.status for o in outcome.outcomes]


def stored_people(stores: Stores) -> dict[Any, int]:
    frame = stores.events.interaction_frame()
    counts = frame.groupby("user_id").size().to_dict() if len(frame) else {}
    with stores.engine.connect() as conn:
        anonymous = conn.execute(
            select(func.count()).select_from(events_table).where(events_table.c.user_id.is_(None))
        ).scalar_one()
    return {**counts, None: anonymous} if anonymous else counts


def test_store_partial_updates_keep_the_other_field(stores: Stores) -> None:
    consent = stores.consent
    assert consent.get("u1") is None
    first = consent.set("u1", tracking=False, default=True)
    assert (first.tracking, first.personalization, first.source) == (False, True, "api")
    second = consent.set("u1", personalization=False, source="event")
    assert (second.tracking, second.personalization, second.source) == (False, False, "event")
    assert second.updated_at >= first.updated_at
    strict = consent.set("u2", tracking=True, default=False)
    assert (strict.tracking, strict.personalization) == (True, False)
    assert set(consent.get_many(["u1", "u2", "nobody"])) == {"u1", "u2"}
    assert consent.user_ids(personalization=False) == {"u1", "u2"}
    assert consent.user_ids(tracking=True) == {"u2"}
    assert consent.set_many([("u3", True, None), ("u3", None, False)], "event") == 2
    assert (consent.get("u3").tracking, consent.get("u3").personalization) == (True, False)
    assert consent.erase_user("u1") == 1 and consent.get("u1") is None
    assert consent.erase_user("u1") == 0


def test_events_of_people_without_tracking_consent_are_dropped(
    any_settings: Settings, stores: Stores
) -> None:
    stores.consent.set("refuser", tracking=False)
    stores.consent.set("fan", tracking=True, personalization=False)
    service = IngestService(any_settings, stores)
    outcome = service.ingest_events(
        [view("refuser", "a"), view("fan", "a"), view("stranger", "b"), view("refuser", "c", 1)]
    )
    assert statuses(outcome) == ["dropped", "accepted", "accepted", "dropped"]
    reasons = [o.reason for o in outcome.outcomes]
    assert reasons == [NO_TRACKING_CONSENT, None, None, NO_TRACKING_CONSENT]
    assert outcome.count("dropped") == 2
    assert stored_people(stores) == {"fan": 1, "stranger": 1}


def test_untracked_events_can_be_kept_anonymised(any_settings: Settings, stores: Stores) -> None:
    settings = any_settings.model_copy(update={"untracked_events": "anonymize"})
    stores.consent.set("refuser", tracking=False)
    service = IngestService(settings, stores)
    events = [
        view("refuser", "a", context={"page": "/p"}, properties={"q": "x"}),
        view("refuser", "a", 1, recommendation_id="rec-1"),
        view("refuser", "b", 2, event_id="client-7"),
        view("other", "a", 3),
    ]
    outcome = service.ingest_events(events)
    assert statuses(outcome) == ["accepted"] * 4
    assert [o.anonymized for o in outcome.outcomes] == [True, True, True, False]
    assert outcome.outcomes[2].event_id == "client-7"  # the client's id is kept for retries
    assert stored_people(stores) == {"other": 1, None: 3}
    assert stores.events.user_events("refuser") == []
    with stores.engine.connect() as conn:
        query = select(events_table).where(events_table.c.user_id.is_(None))
        rows = conn.execute(query).mappings().all()
    assert sorted(r["item_id"] for r in rows) == ["a", "a", "b"]
    for row in rows:
        assert row["anonymous_id"] is None and row["recommendation_id"] is None
        assert row["context"] is None and row["properties"] is None
    # item popularity still counts them: each anonymised event as one person
    assert stores.events.item_counts(0) == {"a": 3, "b": 1}
    # the client's id keeps a retry a duplicate; derived ids are fresh, never the person's
    again = service.ingest_events([events[2]])
    assert statuses(again) == ["duplicate"]


def test_consent_required_means_no_record_no_tracking(
    any_settings: Settings, stores: Stores
) -> None:
    settings = any_settings.model_copy(update={"consent_required": True})
    stores.consent.set("agreed", tracking=True, default=False)
    outcome = IngestService(settings, stores).ingest_events(
        [
            view("agreed", "a"),
            view("unknown", "a"),
            {"anonymous_id": "cookie", "item_id": "b", "type": "view", "timestamp": T0},
        ]
    )
    assert statuses(outcome) == ["accepted", "dropped", "dropped"]
    assert stored_people(stores) == {"agreed": 1}


def test_consent_on_an_event_applies_to_it_and_later_events_only(
    any_settings: Settings, stores: Stores
) -> None:
    settings = any_settings.model_copy(update={"consent_required": True})
    service = IngestService(settings, stores)
    outcome = service.ingest_events(
        [
            view("u", "a", 0),  # judged before any consent: dropped
            view("u", "b", 1, context={"consent": {"tracking": True}, "page": "/x"}),
            view("u", "c", 2),
            view("u", "d", 3, context={"consent": {"tracking": False}}),
            view("u", "e", 4),
        ]
    )
    assert statuses(outcome) == ["dropped", "accepted", "accepted", "dropped", "dropped"]
    assert [h.item_id for h in stores.events.user_history("u")] == ["b", "c"]
    stored = stores.consent.get("u")
    assert (stored.tracking, stored.personalization, stored.source) == (False, False, "event")
    # the consent object is not stored as context: the rest of the context is
    assert stores.events.user_events("u")[-1]["context"] == {"page": "/x"}


def test_a_duplicate_event_does_not_change_consent_again(
    any_settings: Settings, stores: Stores
) -> None:
    service = IngestService(any_settings, stores)
    withdraw = view("u", "a", 0, event_id="e1", context={"consent": {"tracking": False}})
    assert statuses(service.ingest_events([withdraw])) == ["dropped"]
    stores.consent.set("u", tracking=True)  # consent given again, later, through the API
    grant = view("u", "b", 1, event_id="e2", context={"consent": {"personalization": False}})
    assert statuses(service.ingest_events([grant, grant])) == ["accepted", "duplicate"]
    assert statuses(service.ingest_events([grant])) == ["duplicate"]
    stored = stores.consent.get("u")
    assert (stored.tracking, stored.personalization) == (True, False)


def test_an_event_with_user_and_anonymous_id_needs_both_to_consent(
    any_settings: Settings, stores: Stores
) -> None:
    stores.consent.set("cookie-1", tracking=False)
    outcome = IngestService(any_settings, stores).ingest_events(
        [{**view("u", "a"), "anonymous_id": "cookie-1"}, view("u", "b", 1)]
    )
    assert statuses(outcome) == ["dropped", "accepted"]


@pytest.mark.parametrize(
    ("consent", "loc", "fragment"),
    [
        ({"tracking": "yes"}, ["events", 0, "context", "consent", "tracking"], "boolean"),
        ({}, ["events", 0, "context", "consent"], "tracking, personalization or both"),
        (
            {"tracking": True, "marketing": True},
            ["events", 0, "context", "consent", "marketing"],
            "Extra",
        ),
        ("yes", ["events", 0, "context", "consent"], "dictionary"),
    ],
)
def test_malformed_consent_on_an_event_is_rejected_with_its_path(
    sqlite_stores: Stores, settings: Settings, consent: Any, loc: list[Any], fragment: str
) -> None:
    outcome = IngestService(settings, sqlite_stores).ingest_events(
        [view("u", "a", context={"consent": consent})]
    )
    assert statuses(outcome) == ["rejected"]
    errors = outcome.outcomes[0].errors
    assert [e["loc"] for e in errors] == [loc]
    assert fragment in errors[0]["msg"]
    assert sqlite_stores.consent.get("u") is None
