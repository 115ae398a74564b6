"""Two server processes on one database and one Redis (`attune serve --workers 2`): an
event accepted by one changes the lists the other answers, at once."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from attune.api.app import create_app
from attune.config import Settings
from attune.ingest.service import IngestService
from attune.store.cache import user_key
from attune.store.factory import Stores
from attune.training.pipeline import train
from tests.conftest import ADMIN_KEY, REDIS_URL, two_taste_events

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def shared(any_settings: Settings, stores: Stores, redis_client) -> Iterator[Settings]:
    """Settings of a trained deployment whose cache and sessions live in Redis."""
    prefix = f"attune-workers-test-{uuid.uuid4().hex[:8]}"
    settings = any_settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": prefix})
    IngestService(any_settings, stores).ingest_events(two_taste_events())
    train(any_settings, stores)
    yield settings
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def items(client: TestClient, user: str) -> list[str]:
    response = client.get(f"/v1/users/{user}/recommendations", params={"n": 3})
    assert response.status_code == 200, response.text
    return [it["item_id"] for it in response.json()["items"]]


def test_an_event_sent_to_one_process_reaches_the_other(shared: Settings) -> None:
    # each app opens its own stores from the settings, as each server process does
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        before = items(second, "u0")  # now cached, in Redis
        assert items(second, "u0") == before
        event = {"user_id": "u0", "item_id": before[0], "type": "purchase"}
        assert first.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
        # the other process's cached list was dropped and its next list excludes the item
        assert before[0] not in items(second, "u0")
        # and the event is in the live session both processes read
        session = second.app.state.services.stores.sessions.recent("u0")
        assert [(e.item_id, e.type) for e in session] == [(before[0], "purchase")]


def test_a_list_cached_by_one_process_is_reused_by_the_other(shared: Settings) -> None:
    """The cache is shared, so a person whose next request lands on another process gets
    the cached answer there (it holds the same model version), not a new decision; once
    one process forgot someone in that version, the two decide apart until both have."""
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        decided: list[str] = []
        engine = second.app.state.services.recommendations.engine
        decide = engine.for_user
        engine.for_user = lambda request: decided.append(request.user_id) or decide(request)
        listed = items(first, "u1")
        assert items(second, "u1") == listed
        assert decided == [], "the second process decided again instead of reusing"
        first_models = first.app.state.services.models
        held = first_models.current()
        assert held is not None
        # a copy that forgot somebody keys its answers apart
        first_models._loaded = dataclasses.replace(held, forgotten=12345)
        first.app.state.services.stores.cache.delete_prefix(user_key("u2"))
        items(first, "u2")
        items(second, "u2")
        assert decided == ["u2"]


def test_processes_share_answers_whatever_their_own_catalog_reads(shared: Settings) -> None:
    """Answers are keyed by the catalog's version and a digest of the unavailable items,
    which every process holding the same catalog computes alike, not by what is
    particular to one process (how many times it has read the catalog, ``hash()`` of
    strings, which each interpreter salts)."""
    with (
        TestClient(create_app(shared), headers=AUTH) as first,
        TestClient(create_app(shared), headers=AUTH) as second,
    ):
        for item_id in ("a0", "a1", "a2", "a3", "a4", "b0", "b1"):
            body = {"categories": [item_id[0].upper()], "available": item_id != "b1"}
            assert first.put(f"/v1/items/{item_id}", json=body).status_code == 200
        for app in (first.app, second.app):
            engine = app.state.services.recommendations.engine
            engine.filters.invalidate()  # both read the catalog as it now is
            engine._unavailable_at = float("-inf")
        first_filters = first.app.state.services.recommendations.engine.filters
        second_filters = second.app.state.services.recommendations.engine.filters
        while first_filters.snapshot().token == second_filters.snapshot().token:
            first_filters.invalidate()  # read once more: its own count of reads moves on
        decided: list[str] = []
        engine = second.app.state.services.recommendations.engine
        decide = engine.for_user
        engine.for_user = lambda request: decided.append(request.user_id) or decide(request)
        listed = items(first, "u1")
        assert items(second, "u1") == listed
        assert decided == [], "the second process decided again instead of reusing"
        assert first_filters.snapshot().token != second_filters.snapshot().token
