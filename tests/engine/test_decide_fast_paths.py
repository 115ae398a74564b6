"""The serving fast paths change nothing a person sees (real stores, both backends).

* fill-ins (popular, trending) that cannot reach the list are not built;
* unavailable items are re-read in the background after the first read;
* answers are cached as one JSON text.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from attune.config import Settings
from attune.engine import decide
from attune.engine.decide import DecisionRequest, Pool
from attune.engine.model_holder import ModelHolder
from attune.engine.recommend import RecommendationService
from attune.ingest.service import IngestService
from attune.store.factory import Stores

CATEGORIES = ["A", "B", "C", "D"]
START = 1_700_000_000


@pytest.fixture
def world(any_settings: Settings, stores: Stores) -> RecommendationService:
    """60 people over 48 items in four categories (each person mostly in one), item-kNN."""
    from attune.training.pipeline import train

    rng = np.random.default_rng(5)
    ingest = IngestService(any_settings, stores)
    for k in range(48):
        category = CATEGORIES[k % 4]
        ingest.put_items([{"item_id": f"i{k}", "categories": [category], "title": f"Item {k}"}])
    events = []
    for u in range(60):
        home = u % 4
        for j in range(int(rng.integers(3, 12))):
            k = int(rng.integers(0, 12)) * 4 + (
                home if rng.random() < 0.8 else int(rng.integers(4))
            )
            kind = ["view", "click", "purchase"][int(rng.integers(3))]
            events.append(
                {
                    "user_id": f"u{u}",
                    "item_id": f"i{k}",
                    "type": kind,
                    "timestamp": START + u * 1_000 + j,
                }
            )
    assert ingest.ingest_events(events).count("accepted") == len(events)
    train(any_settings, stores, algorithm="item_knn")
    models = ModelHolder(stores, refresh_seconds=0)
    return RecommendationService(stores, models, any_settings, log_answers=False)


def answers(service: RecommendationService, placement: str | None, n: int) -> list:
    out = []
    for u in [*range(0, 60, 3), 999]:  # 999: a stranger, only fill-ins
        request = DecisionRequest(f"u{u}", n, placement)
        rec = service.engine.for_user(request)
        out.append([(it.item_id, it.score, it.source, it.reasons) for it in rec.items])
    return out


@pytest.mark.parametrize("n", [3, 10, 40])
def test_skipping_unreachable_fill_ins_changes_no_list(world, monkeypatch, n) -> None:
    stores = world.stores
    stores.placements.put("diverse", config={"diversity": {"level": 0.7}}, digest="d1")
    stores.placements.put("capped", config={"diversity": {"max_per_category": 1}}, digest="d2")
    stores.placements.put("trending", config={"sources": {"model": 1, "trending": 1}}, digest="d3")
    placements = [None, "diverse", "capped", "trending"]
    built: list[str] = []

    class Counted(decide.Candidate):
        def __init__(self, item_id: str, *args: Any, **kwargs: Any) -> None:
            super().__init__(item_id, *args, **kwargs)
            built.append(item_id)

    monkeypatch.setattr(decide, "Candidate", Counted)
    fast = {p: answers(world, p, n) for p in placements}
    fast_built = len(built)
    # every fill-in built, as if too few personal candidates were ever in
    monkeypatch.setattr(Pool, "personal_count", lambda self: 0)
    full = {p: answers(world, p, n) for p in placements}
    assert fast == full
    if n < 40:  # the shortcut was taken (with 40 wanted, fill-ins are always needed)
        assert fast_built < len(built) - fast_built
    assert any(src == "popular" for lists in fast.values() for li in lists for _, _, src, _ in li)


def test_unavailable_items_are_re_read_in_the_background(world, monkeypatch) -> None:
    engine = world.engine
    shown = world.for_user("u0", 5).items[0].item_id
    world.stores.catalog.upsert_items(
        [{**world.stores.catalog.get_item(shown), "available": False}]
    )
    engine._unavailable_at = float("-inf")  # never read: the next request reads at once
    assert shown not in [it.item_id for it in engine.for_user(DecisionRequest("u0", 5)).items]

    other = engine.for_user(DecisionRequest("u0", 5)).items[0].item_id
    world.stores.catalog.upsert_items(
        [{**world.stores.catalog.get_item(other), "available": False}]
    )
    reads = []
    real = world.stores.catalog.unavailable_item_ids

    def slow_read() -> set[str]:
        time.sleep(0.3)
        reads.append(1)
        return real()

    monkeypatch.setattr(world.stores.catalog, "unavailable_item_ids", slow_read)
    engine._unavailable_at = time.monotonic() - decide.UNAVAILABLE_REFRESH_SECONDS - 1
    started = time.perf_counter()
    assert other not in engine.unavailable_items()  # stale but answered at once
    assert time.perf_counter() - started < 0.2
    deadline = time.monotonic() + 5
    while other not in engine.unavailable_items() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert other in engine.unavailable_items() and reads == [1]
    assert other not in [it.item_id for it in engine.for_user(DecisionRequest("u0", 5)).items]


def test_a_write_during_a_read_of_unavailable_items_is_not_undone(world, monkeypatch) -> None:
    """A read that began before this process marked an item unavailable must not publish
    its older set over the write; the read that follows it does publish."""
    import threading

    engine = world.engine
    engine.unavailable_items()  # the first read
    shown = world.for_user("u0", 5).items[0].item_id
    real = world.stores.catalog.unavailable_item_ids
    began, release = [threading.Event(), threading.Event()], [threading.Event(), threading.Event()]
    reads = []

    def held_read() -> set[str]:
        k = len(reads)
        found = real()  # the first: before the write below
        reads.append(found)
        began[k].set()
        assert release[k].wait(timeout=30)
        return found

    monkeypatch.setattr(world.stores.catalog, "unavailable_item_ids", held_read)
    monkeypatch.setattr(engine, "_next_unavailable_read", float("-inf"))
    engine._unavailable_refresh.start()
    assert began[0].wait(timeout=30)
    world.stores.catalog.upsert_items(
        [{**world.stores.catalog.get_item(shown), "available": False}]
    )
    engine.catalog_written({shown: False})
    assert shown in engine.unavailable_items()  # at once
    monkeypatch.setattr(decide, "WRITE_RECHECK_SECONDS", 0.0)
    release[0].set()
    assert began[1].wait(timeout=30)  # the older read ended; the next one is reading
    assert shown in engine.unavailable_items()  # not undone by what the older one saw
    release[1].set()
    assert engine._unavailable_refresh.wait(timeout=30)
    assert len(reads) == 2 and shown not in reads[0] and shown in reads[1]
    assert shown in engine.unavailable_items()
    assert shown not in [it.item_id for it in engine.for_user(DecisionRequest("u0", 5)).items]


def test_a_cached_answer_is_the_answer(world) -> None:
    first = world.for_user("u3", 6, placement=None)
    keys = [k for k in world.stores.cache.list_keys() if "rec:" in k]
    assert len(keys) == 1 and isinstance(world.stores.cache.get(keys[0]), str)
    again = world.for_user("u3", 6, placement=None)
    assert again.recommendation_id != first.recommendation_id
    assert [(i.item_id, i.score, i.source, i.reasons) for i in again.items] == [
        (i.item_id, i.score, i.source, i.reasons) for i in first.items
    ]
    assert (again.model_version, again.sources, again.personalized) == (
        first.model_version,
        first.sources,
        first.personalized,
    )


def test_a_version_is_prepared_before_it_serves(world: RecommendationService) -> None:
    """Loading a version builds its catalog views, so no request pays for them."""
    engine = world.engine
    model = engine.models.refresh()
    assert model is not None
    version = model.version.version_id
    token = engine.filters.snapshot().token
    for role in ("main", "fallback", "similar"):
        assert engine.catalog._views.get((token, f"{version}/{role}")) is not None
        assert role in model.__dict__["_unavailable_positions"]
    assert "fallback" in model.__dict__["_empty_history_rankings"]


def test_new_items_are_sliced_from_one_order(world: RecommendationService) -> None:
    stores = world.stores
    now = time.time()
    IngestService(world.engine.settings, stores).put_items(
        [{"item_id": f"new{k}", "created_at": now - k * 3_600.0} for k in range(5)]
    )
    view = world.engine.catalog
    world.engine.filters.invalidate()
    ids = [item.item_id for item in view.new_items(now - 2.5 * 3_600)]
    assert ids == ["new0", "new1", "new2"]
    assert [item.item_id for item in view.new_items(now - 10 * 3_600, limit=2)] == ["new0", "new1"]
    assert list(view.new_items(now + 1)) == []


@pytest.mark.parametrize("n", [3, 10])
def test_a_list_asked_without_reasons_is_the_same_list(world, n) -> None:
    """Reasons are worked out only when asked for; they never change an item, its
    score, its source or the order."""
    world.stores.placements.put("diverse", config={"diversity": {"level": 0.7}}, digest="d1")
    world.stores.preferences.put("u3", {"liked_categories": ["B"]})
    for placement in [None, "diverse"]:
        for u in [*range(0, 60, 3), 999]:
            explained = world.engine.for_user(DecisionRequest(f"u{u}", n, placement))
            plain = world.engine.for_user(DecisionRequest(f"u{u}", n, placement, explain=False))
            assert [(it.item_id, it.score, it.source) for it in plain.items] == [
                (it.item_id, it.score, it.source) for it in explained.items
            ]
    named = world.engine.for_user(DecisionRequest("u0", n)).items
    assert any(r["kind"] == "history" for it in named for r in it.reasons)


def test_the_answer_cache_keeps_explained_and_plain_lists_apart(world) -> None:
    world.cache_seconds = 30.0
    plain = world.for_user("u0", 5, explain=False)
    explained = world.for_user("u0", 5, explain=True)
    assert [it.item_id for it in plain.items] == [it.item_id for it in explained.items]
    assert any(r["kind"] == "history" for it in explained.items for r in it.reasons)


def test_exploration_still_checks_region_and_availability_of_new_items(world) -> None:
    now = time.time()
    IngestService(world.engine.settings, world.stores).put_items(
        [
            {"item_id": "fresh-eu", "created_at": now - 60, "regions": ["EU"]},
            {"item_id": "fresh-gone", "created_at": now - 30, "available": False},
            {"item_id": "fresh-open", "created_at": now - 90},
        ]
    )
    world.engine.filters.invalidate()
    world.engine._unavailable_at = float("-inf")

    def explored(context: dict[str, str]) -> list[str]:
        rec = world.engine.for_user(DecisionRequest("u0", 10, context=context, explain=False))
        return [it.item_id for it in rec.items if it.source == "exploration"]

    assert explored({"region": "US"}) == ["fresh-open"]
    assert explored({"region": "EU"}) == ["fresh-eu"]  # the newest one that may show


def test_similar_and_ranked_lists_asked_without_reasons_are_the_same(world) -> None:
    def plain(rec) -> list:
        return [(it.item_id, it.score, it.source) for it in rec.items]

    for u in ["u0", "u7", None]:
        for anchor in ["i0", "i5"]:
            asked = [DecisionRequest(u, 5, anchor=anchor, explain=e) for e in (True, False)]
            explained, quiet = (world.engine.similar(r) for r in asked)
            assert plain(quiet) == plain(explained)
        candidates = [f"i{k}" for k in range(0, 48, 3)]
        asked = [DecisionRequest(u, 8, candidates=candidates, explain=e) for e in (True, False)]
        explained, quiet = (world.engine.rank(r) for r in asked)
        assert plain(quiet) == plain(explained)
