"""Preferences, placements, segments, recommendation logs, sessions and caches."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from attune.store.cache import MemoryCache, user_key
from attune.store.factory import Stores
from attune.store.redis_cache import RedisCache
from attune.store.sessions import MemorySessionStore, RedisSessionStore, SessionEvent


def test_preferences_round_trip_and_erasure(stores: Stores) -> None:
    assert stores.preferences.get("u1") is None
    stores.preferences.put("u1", {"blocked_categories": ["Drama"]})
    stores.preferences.put("u1", {"blocked_categories": ["Horror"], "diversity": 0.5})
    assert stores.preferences.get("u1") == {"blocked_categories": ["Horror"], "diversity": 0.5}
    assert stores.erase_user("u1")["preferences"] == 1
    assert stores.preferences.get("u1") is None


def test_placements_keep_created_at_on_replace(stores: Stores) -> None:
    first = stores.placements.put("home", config={"n": 10}, digest="a")
    time.sleep(0.01)
    second = stores.placements.put("home", config={"n": 5}, digest="b")
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]
    assert second["config"] == {"n": 5}
    stores.segments.put("eu", rule='traits.region == "EU"', description=None)
    assert [p["name"] for p in stores.placements.list()] == ["home"]
    assert [s["name"] for s in stores.segments.list()] == ["eu"]
    assert stores.placements.delete("home") is True
    assert stores.placements.delete("home") is False
    assert stores.placements.get("home") is None


def test_recommendation_logs_by_user_newest_first(stores: Stores) -> None:
    rows = [
        {
            "recommendation_id": f"r{i}",
            "user_id": "u1" if i < 2 else "u2",
            "placement": None,
            "model_version": "v1",
            "items": [{"item_id": "a", "score": 1.0, "source": "model"}],
            "context": {},
            "created_at": 100.0 + i,
        }
        for i in range(3)
    ]
    stores.recommendation_logs.add(rows)
    stores.recommendation_logs.add(rows[:1])  # a repeat is ignored
    assert [r["recommendation_id"] for r in stores.recommendation_logs.for_user("u1")] == [
        "r1",
        "r0",
    ]
    assert stores.erase_user("u1")["recommendation_logs"] == 2
    assert stores.recommendation_logs.for_user("u1") == []
    assert stores.recommendation_logs.get("r2") is not None


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def live(request: pytest.FixtureRequest) -> tuple[object, object]:
    if request.param == "memory":
        return MemoryCache(), MemorySessionStore()
    client = request.getfixturevalue("redis_client")
    prefix = f"attune-test-{uuid.uuid4().hex[:8]}"
    return RedisCache(client, prefix), RedisSessionStore(client, prefix)


def test_sessions_keep_the_newest_events_in_order(live: tuple[object, object]) -> None:
    _, sessions = live
    sessions.record("u:1", [SessionEvent("b", "view", 2.0), SessionEvent("a", "view", 1.0)])
    sessions.record("u:1", [SessionEvent("c", "not_interested", 3.0)])
    assert [e.item_id for e in sessions.recent("u:1")] == ["a", "b", "c"]
    assert sessions.recent("someone-else") == []
    assert sessions.erase_user("u:1") == 1
    assert sessions.recent("u:1") == []


def test_cache_drops_one_persons_entries_only(live: tuple[object, object]) -> None:
    cache, _ = live
    cache.set(user_key("a:b") + "recs", {"x": 1}, 60)
    cache.set(user_key("a") + "recs", {"x": 2}, 60)
    cache.set("catalog:stamp", "s", 60)
    assert cache.get(user_key("a:b") + "recs") == {"x": 1}
    assert cache.erase_user("a:b") == 1
    assert cache.get(user_key("a:b") + "recs") is None
    assert cache.get(user_key("a") + "recs") == {"x": 2}
    assert cache.get("catalog:stamp") == "s"
    assert not any("a%3Ab" in k for k in cache.list_keys())


def test_cache_entries_expire(live: tuple[object, object]) -> None:
    cache, _ = live
    cache.set("k", [1, 2], 0.05)
    assert cache.get("k") == [1, 2]
    time.sleep(0.1)
    assert cache.get("k") is None


def test_a_cache_entry_and_the_live_session_are_read_together(
    live: tuple[object, object], sqlite_stores: Stores
) -> None:
    """A request reads both before deciding: in one Redis, one round trip (no single
    command), the same values as two reads."""
    cache, sessions = live
    bundle = dataclasses.replace(sqlite_stores, cache=cache, sessions=sessions)
    key = user_key("u:2") + "rec:abc"
    cache.set(key, '{"items": []}', 60)
    sessions.record("u:2", [SessionEvent("a", "view", 1.0), SessionEvent("b", "click", 2.0)])
    commands: list[object] = []
    client = getattr(cache, "client", None)
    if client is not None:
        original = client.execute_command
        client.execute_command = lambda *a, **k: commands.append(a) or original(*a, **k)
    try:
        found, recent, generation = bundle.cached_and_recent(key, "u:2")
    finally:
        if client is not None:
            del client.execute_command
    assert found == '{"items": []}'
    assert [e.item_id for e in recent] == ["a", "b"]
    assert commands == [], "one pipelined round trip, no command of its own"
    assert generation == cache.generation(key)
    other = user_key("u:3") + "rec:abc"
    assert bundle.cached_and_recent(other, "u:3") == (None, [], cache.generation(other))


def test_an_answer_decided_before_the_person_changed_is_not_stored(
    live: tuple[object, object],
) -> None:
    """The generation read before deciding must still hold when the answer is stored:
    an event or a preference change in between drops the person's entries and refuses
    the stale answer; other people's answers are stored as usual."""
    cache, _ = live
    key, other = user_key("u:1") + "rec:abc", user_key("u:2") + "rec:abc"
    before, other_before = cache.generation(key), cache.generation(other)
    cache.delete_prefix(user_key("u:1") + "rec:")  # an event of u:1 was accepted
    assert cache.set(key, "stale", 60, before) is False
    assert cache.get(key) is None
    assert cache.set(other, "fine", 60, other_before) is True
    assert cache.get(other) == "fine"
    now = cache.generation(key)
    assert now != before
    assert cache.set(key, "fresh", 60, now) is True
    assert cache.get(key) == "fresh"
    assert cache.erase_user("u:1") == 1  # erasure moves it on too
    assert cache.set(key, "late", 60, now) is False


def test_dropping_a_persons_lists_keeps_their_other_entries_and_scans_nothing(
    live: tuple[object, object],
) -> None:
    """An event drops the person's cached lists (``user:<id>:rec:``) through their own
    index: the rest of the keyspace (other people, other kinds of entry) is not walked."""
    cache, _ = live
    cache.set(user_key("a") + "rec:1", "list", 60)
    cache.set(user_key("a") + "rec:2", "list", 60)
    cache.set(user_key("a") + "profile", "p", 60)
    cache.set(user_key("ab") + "rec:1", "list", 60)
    client = getattr(cache, "client", None)
    commands: list[str] = []
    if client is not None:
        original = client.execute_command
        client.execute_command = lambda *a, **k: commands.append(str(a[0])) or original(*a, **k)
    try:
        assert cache.delete_prefix(user_key("a") + "rec:") == 2
    finally:
        if client is not None:
            del client.execute_command
    assert not any("SCAN" in c.upper() for c in commands)
    assert cache.get(user_key("a") + "rec:1") is None
    assert cache.get(user_key("a") + "profile") == "p"
    assert cache.get(user_key("ab") + "rec:1") == "list"


@pytest.mark.redis
def test_dropping_everyones_lists_in_redis_takes_a_few_round_trips(redis_client) -> None:
    """After an erasure every cached list goes (they may hold what the person caused):
    by pages of keys, not one command per key."""
    cache = RedisCache(redis_client, f"attune-test-{uuid.uuid4().hex[:8]}")
    for k in range(2_500):
        cache.set(user_key(f"p{k}") + "rec:x", "list", 60)
    cache.set("catalog:stamp", "kept", 60)
    removals: list[str] = []
    original = redis_client.execute_command

    def counted(*args: object, **kwargs: object) -> object:
        if str(args[0]).upper() in ("DEL", "UNLINK"):
            removals.append(str(args[0]))
        return original(*args, **kwargs)

    redis_client.execute_command = counted
    try:
        assert cache.delete_prefix("user:") == 2_500
    finally:
        del redis_client.execute_command
    assert len(removals) <= 4
    assert cache.get(user_key("p7") + "rec:x") is None
    assert cache.get("catalog:stamp") == "kept"
