"""A cached answer never outlives what made it stale, even when the change lands while
the answer is being decided (real stores; in-process cache and Redis)."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from attune.engine.decide import DecisionRequest, Recommendation
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.store.cache import MemoryCache
from attune.store.redis_cache import RedisCache
from attune.store.sessions import MemorySessionStore, RedisSessionStore
from tests.engine.test_decide_fast_paths import world  # noqa: F401 - the fixture


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cached(request: pytest.FixtureRequest, world: RecommendationService) -> RecommendationService:  # noqa: F811
    """The trained world's service with a 30 s answer cache in memory or in Redis."""
    if request.param == "memory":
        cache, sessions = MemoryCache(), MemorySessionStore()
    else:
        client = request.getfixturevalue("redis_client")
        prefix = f"attune-race-test-{uuid.uuid4().hex[:8]}"
        cache, sessions = RedisCache(client, prefix), RedisSessionStore(client, prefix)
    stores = dataclasses.replace(world.stores, cache=cache, sessions=sessions)
    service = RecommendationService(stores, world.engine.models, world.engine.settings, False)
    service.cache_seconds = 30.0
    return service


def listed(rec: Recommendation) -> list[str]:
    return [it.item_id for it in rec.items]


def test_an_event_accepted_while_deciding_is_seen_by_the_next_answer(
    cached: RecommendationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page sends a purchase and asks for a list at once: the list decided before
    the purchase was stored is right for that request, but must not be cached for the
    next one (which would show the bought item for the cache's 30 seconds)."""
    ingest = IngestService(cached.engine.settings, cached.stores)
    ingest.bus.subscribe(cached.on_events)
    bought = cached.engine.for_user(DecisionRequest("u0", 5, explain=False)).items[0].item_id
    decide = cached.engine.for_user

    def decided_while_buying(request: DecisionRequest) -> Recommendation:
        rec = decide(request)
        event = {"user_id": "u0", "item_id": bought, "type": "purchase", "timestamp": time.time()}
        assert ingest.ingest_events([event]).count("accepted") == 1
        return rec

    monkeypatch.setattr(cached.engine, "for_user", decided_while_buying)
    assert bought in listed(cached.for_user("u0", 5, explain=False))
    monkeypatch.undo()
    assert bought not in listed(cached.for_user("u0", 5, explain=False))


def test_a_category_blocked_while_deciding_never_shows_from_the_cache(
    cached: RecommendationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocked categories never appear: not even from an answer decided just before."""
    first = cached.engine.for_user(DecisionRequest("u4", 5, explain=False)).items[0].item_id
    category = cached.engine.catalog.lookup().categories_of(first)
    decide = cached.engine.for_user

    def decided_while_blocking(request: DecisionRequest) -> Recommendation:
        rec = decide(request)
        cached.stores.preferences.put("u4", {"blocked_categories": sorted(category)})
        cached.forget_cached("u4")  # what PUT /v1/users/{id}/preferences does
        return rec

    monkeypatch.setattr(cached.engine, "for_user", decided_while_blocking)
    assert first in listed(cached.for_user("u4", 5, explain=False))
    monkeypatch.undo()
    again = cached.for_user("u4", 5, explain=False)
    lookup = cached.engine.catalog.lookup()
    assert not any(lookup.categories_of(i) & category for i in listed(again))


def test_answers_are_still_reused_when_nothing_changed(cached: RecommendationService) -> None:
    first = cached.for_user("u8", 5, explain=False)
    calls = []
    decide = cached.engine.for_user
    cached.engine.for_user = lambda request: calls.append(request) or decide(request)  # type: ignore[method-assign]
    second = cached.for_user("u8", 5, explain=False)
    assert listed(second) == listed(first) and calls == []


def test_an_answer_slower_than_the_generation_window_is_not_cached(
    cached: RecommendationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caches remember that a person's entries were dropped for a minute only: an
    answer decided over longer than half of that is given but not stored, so a change
    that landed early in the decision cannot be outlived by it."""
    import attune.engine.recommend as recommend

    clock = [1_000.0]
    monkeypatch.setattr(recommend, "monotonic", lambda: clock[0])
    decide = cached.engine.for_user
    decisions: list[str] = []

    def slow(request: DecisionRequest) -> Recommendation:
        decisions.append(request.user_id)
        clock[0] += recommend.SLOW_DECISION_SECONDS + 1
        return decide(request)

    monkeypatch.setattr(cached.engine, "for_user", slow)
    first = listed(cached.for_user("u1", 5, explain=False))
    assert listed(cached.for_user("u1", 5, explain=False)) == first
    assert decisions == ["u1", "u1"]  # decided again: the slow answer was not kept


def test_an_answer_decided_in_time_is_cached(
    cached: RecommendationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = cached.engine.for_user
    decisions: list[str] = []

    def counted(request: DecisionRequest) -> Recommendation:
        decisions.append(request.user_id)
        return decide(request)

    monkeypatch.setattr(cached.engine, "for_user", counted)
    cached.for_user("u1", 5, explain=False)
    cached.for_user("u1", 5, explain=False)
    assert decisions == ["u1"]
