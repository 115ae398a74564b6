"""Consent: whether Attune may track a person and personalise for them.

A person's consent is set through ``PUT /v1/users/{id}/consent`` (source ``api``) or
carried on an event as ``context.consent`` (source ``event``), which is applied before
that event is judged. Without a record, setting ``consent_required`` decides: False
(default) counts the person as consenting, True (GDPR-strict) as refusing both.

* No tracking consent: the person's events are dropped, or stored anonymised
  (``untracked_events = "anonymize"``: without user, anonymous and recommendation ids).
* No personalisation consent: the person gets non-personalised answers and their events
  are left out of training, so no model learns a profile of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from attune.config import Settings
from attune.store.cache import user_key as cache_prefix
from attune.store.protocols import Consent, ConsentStore, EventRow

if TYPE_CHECKING:
    from attune.store.factory import Stores

EVENT_SOURCE = "event"
API_SOURCE = "api"
NO_TRACKING_CONSENT = "no tracking consent"


class ConsentIn(BaseModel):
    """A consent update; a field left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    tracking: StrictBool | None = Field(
        default=None, description="May Attune store what this person does?"
    )
    personalization: StrictBool | None = Field(
        default=None, description="May Attune learn a profile and personalise for them?"
    )

    @model_validator(mode="after")
    def _something(self) -> ConsentIn:
        if self.tracking is None and self.personalization is None:
            raise ValueError("give tracking, personalization or both")
        return self


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What a person's consent means now (their record, or the configured default)."""

    tracking: bool
    personalization: bool
    source: str
    updated_at: float | None


def default_consent(settings: Settings) -> bool:
    """What a person without a record has agreed to (both fields alike)."""
    return not settings.consent_required


def effective(consent: Consent | None, settings: Settings) -> ConsentState:
    if consent is None:
        allowed = default_consent(settings)
        return ConsentState(allowed, allowed, "default", None)
    return ConsentState(
        consent.tracking, consent.personalization, consent.source, consent.updated_at
    )


@dataclass(frozen=True, slots=True)
class ConsentedEvent:
    """One valid event as the consent gate sees it.

    Attributes:
        person_ids: the stored user and/or anonymous id of the event.
        update: consent the event carries (``context.consent``), or None; give None too
            for an event already stored, since a duplicate changes nothing.
    """

    person_ids: tuple[str, ...]
    update: ConsentIn | None


class ConsentGate:
    """Applies consent carried on events, then says which events may be tracked."""

    def __init__(self, settings: Settings, store: ConsentStore) -> None:
        self.settings = settings
        self.store = store

    def judge(self, events: Sequence[ConsentedEvent]) -> list[bool]:
        """Whether each event may be stored with its ids, in order.

        An event's own consent update counts for it and every later event of the same
        person; an earlier event is judged by the state before it. Updates are stored
        (source ``event``) before this returns. An event naming a user and an anonymous
        id is tracked only if both may be.
        """
        ids = sorted({pid for event in events for pid in event.person_ids})
        if not ids:
            return [True] * len(events)
        default = default_consent(self.settings)
        tracking = {pid: c.tracking for pid, c in self.store.get_many(ids).items()}
        updates: list[tuple[str, bool | None, bool | None]] = []
        verdicts = []
        for event in events:
            if event.update is not None:
                for pid in event.person_ids:
                    updates.append((pid, event.update.tracking, event.update.personalization))
                    if event.update.tracking is not None:
                        tracking[pid] = event.update.tracking
            verdicts.append(all(tracking.get(pid, default) for pid in event.person_ids))
        self.store.set_many(updates, EVENT_SOURCE, default)
        return verdicts


def anonymized(row: EventRow, derived_id: bool) -> EventRow:
    """An event of someone without tracking consent, as it may be stored.

    What is left says that an item was viewed, bought… and when: enough for item
    popularity, nothing that leads back to the person (no user, anonymous or
    recommendation id, no free-form context or properties). An id the client sent is
    kept, so retries stay duplicates; an id derived from the event's content (which
    includes the person's id) is replaced by a random one.
    """
    return {
        **row,
        "event_id": f"a-{uuid.uuid4().hex}" if derived_id else row["event_id"],
        "user_id": None,
        "anonymous_id": None,
        "recommendation_id": None,
        "context": None,
        "properties": None,
    }


def personalizable(frame: pd.DataFrame, settings: Settings, store: ConsentStore) -> pd.DataFrame:
    """The rows of an interaction frame (column ``user_id``) whose person may be profiled."""
    if frame.empty:
        return frame
    if settings.consent_required:
        allowed = store.user_ids(personalization=True)
        return frame.loc[frame["user_id"].isin(allowed)]
    refused = store.user_ids(personalization=False)
    if not refused:
        return frame
    return frame.loc[~frame["user_id"].isin(refused)]


def drop_live_state(stores: Stores, stored_id: str, refused_personalization: bool) -> None:
    """After a person's consent changed: their cached answers go, so the next one follows
    the new consent; refusing personalisation also ends their live session (no profile
    of them is kept for the requests to come)."""
    stores.cache.delete_prefix(cache_prefix(stored_id))
    if refused_personalization:
        stores.sessions.erase_user(stored_id)
