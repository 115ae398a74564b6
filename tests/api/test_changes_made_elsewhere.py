"""Changes made by another process reach a running server: an erasure (``attune users
erase`` beside an embedded server) its in-process sessions and cached answers, a new
model version an idle server."""

from __future__ import annotations

import dataclasses
import time

import pytest

from attune.config import Settings
from attune.engine import erasure_watch
from attune.privacy.service import PrivacyService
from attune.store.cache import MemoryCache
from attune.store.factory import Stores
from attune.store.sessions import MemorySessionStore

PERSON = "u0"


def reasons_of(body: dict) -> set[str]:
    return {r["kind"] for it in body["items"] for r in it.get("reasons", [])}


def test_another_process_erasing_a_person_clears_the_servers_memory(
    client, trained: Stores, any_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure_watch, "WATCH_SECONDS", 0.0)
    now = time.time()
    event = {"user_id": PERSON, "item_id": "b2", "type": "view", "timestamp": now}
    assert client.post("/v1/events", json={"events": [event]}).status_code == 200
    before = client.get(f"/v1/users/{PERSON}/recommendations", params={"explain": True}).json()
    assert "session" in reasons_of(before)  # "because you just viewed" from live state
    services = client.app.state.services
    assert services.stores.sessions.recent(PERSON)

    # the CLI: the same database, its own (empty) memory
    elsewhere = dataclasses.replace(trained, cache=MemoryCache(), sessions=MemorySessionStore())
    PrivacyService(any_settings, elsewhere).erase(PERSON, actor="cli")

    after = client.get(f"/v1/users/{PERSON}/recommendations", params={"explain": True}).json()
    assert after["recommendation_id"] != before["recommendation_id"]  # not the cached answer
    assert "session" not in reasons_of(after)
    assert services.stores.sessions.recent(PERSON) == []

    # applied once: what the person does after the erasure counts again
    assert client.post("/v1/events", json={"events": [event]}).status_code == 200
    again = client.get(f"/v1/users/{PERSON}/recommendations", params={"explain": True}).json()
    assert "session" in reasons_of(again)


def test_an_erasure_is_looked_for_at_most_every_watch_period(
    client, trained: Stores, any_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    audit = client.app.state.services.stores.audit
    original = audit.list

    def counting(*args, **kwargs):
        reads.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(audit, "list", counting)
    for _ in range(20):
        client.get(f"/v1/users/{PERSON}/recommendations")
    assert len(reads) <= 1  # 20 lists well inside one period


def test_an_idle_server_picks_up_a_new_version_without_a_request(
    any_settings: Settings, trained: Stores
) -> None:
    """A rollback or a retrain at a quiet hour is served from the first request after."""
    from fastapi.testclient import TestClient

    from attune.api.app import create_app
    from attune.training.pipeline import train
    from tests.conftest import AUTH

    settings = any_settings.model_copy(update={"model_refresh_seconds": 0.5})
    with TestClient(create_app(settings, trained), headers=AUTH) as api:
        holder = api.app.state.services.models
        first = holder.held.version.version_id
        newer = train(settings, trained, algorithm="popularity")
        assert newer.version_id != first
        deadline = time.monotonic() + 15
        while holder.held.version.version_id != newer.version_id:
            assert time.monotonic() < deadline, "the idle server never loaded the new version"
            time.sleep(0.1)
