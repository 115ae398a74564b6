"""Erasure leaves no trace of the person: every table (SQLite and PostgreSQL), every cache
and session key (in-process and Redis), every model artifact file, every file of rejected
import rows; nobody else loses a row."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attune.api.app import create_app
from attune.config import Settings
from attune.ingest.files import read_table
from attune.ingest.importers import import_events, write_rejected
from attune.ingest.schemas import UserIn
from attune.ingest.service import IngestService
from attune.store.cache import user_key
from attune.store.factory import Stores
from attune.store.redis_cache import RedisCache
from attune.store.sessions import RedisSessionStore, SessionEvent
from attune.training.pipeline import train
from tests.conftest import AUTH, two_taste_events
from tests.privacy.traces import artifact_traces, cache_traces, redis_traces, sql_traces

TARGET = "erase-target-7f3a"
COOKIE = "cookie-of-erase-target-7f3a"
OTHER = "u4"
T0 = 1_700_000_000


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def live(request: pytest.FixtureRequest, stores: Stores) -> Iterator[tuple[Stores, Any, str]]:
    """The stores with an in-process or a Redis cache and session store."""
    if request.param == "memory":
        yield stores, None, ""
        return
    client = request.getfixturevalue("redis_client")
    prefix = f"attune-erasure-test-{uuid.uuid4().hex[:8]}"
    swapped = dataclasses.replace(
        stores, cache=RedisCache(client, prefix), sessions=RedisSessionStore(client, prefix)
    )
    try:
        yield swapped, client, prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


def seed(settings: Settings, stores: Stores) -> None:
    """Two tastes of people, plus everything Attune can hold about TARGET."""
    ingest = IngestService(settings, stores)
    ingest.ingest_events(two_taste_events())
    mine = [
        {"user_id": TARGET, "item_id": f"a{k}", "type": "view", "timestamp": T0 + k}
        for k in range(4)
    ]
    mine.append(  # after logging in, on the device they used before
        {
            "user_id": TARGET,
            "anonymous_id": COOKIE,
            "item_id": "a4",
            "type": "purchase",
            "timestamp": T0 + 10,
            "context": {"page": f"/u/{TARGET}"},
        }
    )
    mine.append(  # before logging in: only the device id
        {"anonymous_id": COOKIE, "item_id": "b1", "type": "click", "timestamp": T0 - 10}
    )
    outcome = ingest.ingest_events(mine)
    assert outcome.count("accepted") == 6
    for person in (TARGET, OTHER):
        ingest.put_user(person, UserIn(traits={"region": "EU", "nick": person}))
        stores.preferences.put(person, {"blocked_items": ["b0"]})
        stores.recommendation_logs.add(
            [
                {
                    "recommendation_id": f"rec-{person}",
                    "user_id": person,
                    "placement": "home",
                    "model_version": "v1",
                    "items": [{"item_id": "a1", "score": 1.0}],
                    "context": {"user": person},
                    "created_at": time.time(),
                }
            ]
        )
        stores.sessions.record(person, [SessionEvent("a1", "view", time.time())])
        stores.cache.set(user_key(person) + "recommendations", {"for": person}, 600)
    stores.consent.set(TARGET, tracking=True, personalization=True)
    stores.consent.set(COOKIE, tracking=True, personalization=True)
    # `attune import` of files with bad rows: one beside an input outside the data folder,
    # one beside an input inside it
    for folder in (inbox(settings), settings.data_dir / "imports"):
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "events.csv"
        source.write_text(
            "user_id,anonymous_id,item_id,timestamp\n"
            f"{TARGET},,a1,yesterday\n"
            f",{COOKIE},a2,yesterday\n"
            f"{OTHER},,a3,yesterday\n"
            f"{OTHER},,a3,{T0 + 50}\n"
        )
        report = import_events(ingest, read_table(source), source=source.name)
        assert report.rejected == 3
        assert write_rejected(report, source, settings.data_dir / "rejected") is not None


def inbox(settings: Settings) -> Path:
    """Where the operator keeps files to import: beside the data folder, not in it."""
    return settings.data_dir.parent / "inbox"


def rejected_files(settings: Settings) -> list[Path]:
    found = [*inbox(settings).glob("*.rejected.csv"), *settings.data_dir.rglob("*.rejected.csv")]
    assert len(found) == 2, found
    return found


def everywhere(stores: Stores, settings: Settings, client: Any, prefix: str) -> list[str]:
    found = [f"sql:{t}" for t in sql_traces(stores.engine, TARGET)]
    found += [f"cache:{k}" for k in cache_traces(stores.cache, TARGET)]
    if client is not None:
        found += [f"redis:{k}" for k in redis_traces(client, prefix, TARGET)]
    else:
        found += [f"session:{TARGET}"] if stores.sessions.recent(TARGET) else []
    found += [f"artifact:{f}" for f in artifact_traces(settings.models_dir, TARGET)]
    for path in rejected_files(settings):
        for needle in (TARGET, COOKIE):
            found += [f"rejected:{path.name}"] if needle in path.read_text() else []
    return found


def test_erasure_leaves_no_trace_anywhere(any_settings: Settings, live) -> None:
    stores, redis_client, prefix = live
    seed(any_settings, stores)
    train(any_settings, stores, algorithm="als", params={"factors": 8, "iterations": 3})
    before = everywhere(stores, any_settings, redis_client, prefix)
    # the scan finds the person where they are, so an empty scan afterwards means something
    for place in (
        "sql:events.user_id",
        "sql:users.user_id",
        "sql:user_consent.user_id",
        "sql:user_preferences.user_id",
        "sql:recommendation_logs.user_id",
        "artifact:",
        "rejected:",
    ):
        assert any(f.startswith(place) for f in before), (place, before)
    assert any(f.startswith(("cache:", "redis:", "session:")) for f in before)
    events_before = sum(stores.events.count_by_type().values())
    other_before = len(stores.events.user_events(OTHER))

    with TestClient(create_app(any_settings, stores), headers=AUTH) as api:
        assert api.get(f"/v1/users/{OTHER}/recommendations").status_code == 200
        response = api.delete(f"/v1/users/{TARGET}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user_id"] == TARGET and body["identities"] == 2
        assert body["erased"]["events"] == 6
        assert body["erased"]["users"] == 1
        assert body["erased"]["consent"] == 2
        assert body["erased"]["preferences"] == 1
        assert body["erased"]["recommendation_logs"] >= 1
        assert body["erased"]["artifacts"] == 2  # ALS user-factor rows: their id and device id
        assert body["erased"]["cache"] >= 1 and body["erased"]["sessions"] >= 1
        assert body["erased"]["rejected_files"] == 4  # their own row and their device's
        assert set(body["models"]) == {"main", "fallback", "similar"}
        holder = api.app.state.services.models
        assert TARGET not in set(holder.current().main.user_ids.tolist())  # at once
        assert holder.wait_for_jobs(120)  # the durable copy (refit or republished version)

        assert everywhere(stores, any_settings, redis_client, prefix) == []
        # nobody else lost anything
        assert sum(stores.events.count_by_type().values()) == events_before - 6
        assert len(stores.events.user_events(OTHER)) == other_before
        assert api.get(f"/v1/users/{OTHER}").json()["traits"]["nick"] == OTHER
        assert stores.preferences.get(OTHER) is not None
        assert stores.recommendation_logs.for_user(OTHER)
        for path in rejected_files(any_settings):  # the others' rejected rows stay, as written
            lines = path.read_bytes().split(b"\r\n")
            assert lines[0].startswith(b"row,reason,") and len(lines) == 3 and not lines[2]
            assert b"," + OTHER.encode() + b"," in lines[1]
        assert api.get(f"/v1/users/{TARGET}").status_code == 404
        assert api.get(f"/v1/users/{TARGET}/export").status_code == 404
        # erasing again (or someone unknown) removes nothing and still succeeds
        again = api.delete(f"/v1/users/{TARGET}")
        assert again.status_code == 200 and sum(again.json()["erased"].values()) == 0

    # the audit log says an erasure happened, under a keyed hash of the id
    entries = stores.audit.list(action="user.erase")
    assert len(entries) == 2 and entries[0].target.startswith("user:")
    assert TARGET not in repr(entries)


def test_a_saved_model_can_be_loaded_after_erasing_one_of_its_users(
    settings: Settings, sqlite_stores: Stores
) -> None:
    """Regression: rows removed from an artifact must leave its arrays consistent."""
    from attune.models.registry import load_model

    seed(settings, sqlite_stores)
    version = train(settings, sqlite_stores, algorithm="als", params={"factors": 8})
    folder = sqlite_stores.artifacts.open(version.artifact_uri) / "main"
    n_users = len(load_model(folder).user_ids)
    assert sqlite_stores.artifacts.erase_user(TARGET) == 1
    model = load_model(folder)
    assert len(model.user_ids) == n_users - 1 and TARGET not in set(model.user_ids.tolist())
    assert model.user_factors.shape[0] == n_users - 1
    assert sqlite_stores.artifacts.erase_user(TARGET) == 0


def test_the_models_are_told_the_contexts_of_the_erased_events(
    any_settings: Settings, stores: Stores
) -> None:
    from attune.privacy.erasure import erase_person

    told: dict[str, list[Any]] = {}

    class Recording:
        def forget_user(self, user_id: str, history: list[Any]) -> dict[str, str]:
            told[user_id] = history
            return {}

    event = {"user_id": "A", "item_id": "x", "type": "view", "timestamp": 1_700_000_000}
    IngestService(any_settings, stores).ingest_events([{**event, "context": {"device": "tv"}}])
    erase_person(stores, "A", models=Recording())
    assert [e.context for e in told["A"]] == [{"device": "tv"}]


def test_lists_answered_while_the_models_forget_are_swept_too(
    any_settings: Settings, stores: Stores
) -> None:
    """Forgetting a person in the models takes seconds, during which requests (in this
    process or another) still answer from what is being erased: the lists they log,
    cache or hold as live state are gone when the erasure returns."""
    from attune.privacy.erasure import erase_person

    settled: list[str] = []

    class AnsweringMeanwhile:
        def forget_user(self, user_id: str, history: list[Any]) -> dict[str, str]:
            stores.recommendation_logs.add(
                [
                    {
                        "recommendation_id": f"meanwhile-{user_id}",
                        "user_id": user_id,
                        "placement": None,
                        "model_version": "v",
                        "items": [{"item_id": "a1", "score": 1.0, "position": 1}],
                        "created_at": time.time(),
                    }
                ]
            )
            stores.cache.set(user_key(user_id) + "rec:x", {"items": ["a1"]}, 60)
            stores.sessions.record(user_id, [SessionEvent("a1", "view", time.time())])
            return {}

    event = {"user_id": "A", "item_id": "x", "type": "view", "timestamp": 1_700_000_000}
    IngestService(any_settings, stores).ingest_events([event])
    report = erase_person(
        stores, "A", models=AnsweringMeanwhile(), settle=lambda: settled.append("flushed")
    )
    assert settled == ["flushed"]
    assert stores.recommendation_logs.for_user("A") == []
    assert stores.recommendation_logs.get("meanwhile-A") is None
    assert stores.cache.get(user_key("A") + "rec:x") is None
    assert stores.sessions.recent("A") == []
    assert report.erased["recommendation_logs"] == 1
