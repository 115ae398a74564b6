"""Slow work a server repeats (a new model version, trending counts) happens beside the
requests: they go on with what is held and never wait for it."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from attune.config import Settings
from attune.engine.model_holder import LoadedModel, ModelHolder
from attune.engine.trending import TrendingItem, TrendingTracker
from attune.ingest.service import IngestService
from attune.store.factory import Stores
from attune.training.pipeline import train
from tests.conftest import two_taste_events


def test_a_new_version_is_prepared_while_requests_keep_the_held_one(
    settings: Settings, sqlite_stores: Stores
) -> None:
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    first = train(settings, sqlite_stores, algorithm="popularity")
    holder = ModelHolder(sqlite_stores, refresh_seconds=0.01, swap_inline=False)
    assert holder.current().version.version_id == first.version_id  # first load: inline
    release, preparing = threading.Event(), threading.Event()

    def slow_prepare(model: LoadedModel) -> None:
        preparing.set()
        assert release.wait(timeout=30)

    holder.on_load(slow_prepare)
    second = train(settings, sqlite_stores, algorithm="item_knn")
    time.sleep(0.02)
    started = time.monotonic()
    assert holder.current().version.version_id == first.version_id
    assert preparing.wait(timeout=30), "the new version is being prepared"
    for _ in range(5):  # requests meanwhile answer at once, with the held version
        assert holder.current().version.version_id == first.version_id
    assert time.monotonic() - started < 5
    release.set()
    assert holder.wait_for_refresh(timeout=30)
    assert holder.current().version.version_id == second.version_id


def test_refresh_seconds_zero_swaps_inside_the_call(
    settings: Settings, sqlite_stores: Stores
) -> None:
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    train(settings, sqlite_stores, algorithm="popularity")
    holder = ModelHolder(sqlite_stores, refresh_seconds=0)
    holder.current()
    newer = train(settings, sqlite_stores, algorithm="item_knn")
    assert holder.current().version.version_id == newer.version_id


def test_a_failing_check_in_the_background_keeps_the_held_version(
    settings: Settings, sqlite_stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    IngestService(settings, sqlite_stores).ingest_events(two_taste_events())
    first = train(settings, sqlite_stores, algorithm="popularity")
    holder = ModelHolder(sqlite_stores, refresh_seconds=0.01, swap_inline=False)
    holder.current()

    def away(stage: str) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(sqlite_stores.model_versions, "latest", away)
    time.sleep(0.02)
    assert holder.current().version.version_id == first.version_id
    assert holder.wait_for_refresh(timeout=30)
    assert holder.current().version.version_id == first.version_id


class SlowCounts:
    """An event store whose counts take as long as the test says."""

    def __init__(self) -> None:
        self.people = {"a": 9, "b": 5}
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def latest_timestamp(self) -> float:
        return 1_700_000_000.0

    def item_counts(self, start: float, end: float) -> dict[str, int]:
        self.calls += 1
        assert self.gate.wait(timeout=30)
        recent = end - start <= 86_400.0 + 1
        return dict(self.people) if recent else {}


def test_stale_trending_is_recomputed_while_callers_get_the_last_list() -> None:
    events = SlowCounts()
    tracker = TrendingTracker(events, refresh_seconds=0.01, min_people=1)  # type: ignore[arg-type]
    assert [t.item_id for t in tracker.top(5)] == ["a", "b"]  # first: computed inline
    events.gate.clear()
    events.people = {"b": 20, "a": 1}
    time.sleep(0.02)
    started = time.monotonic()
    stale: list[TrendingItem] = tracker.top(5)
    assert [t.item_id for t in stale] == ["a", "b"], "the last list, not a wait"
    assert time.monotonic() - started < 1
    events.gate.set()
    deadline = time.monotonic() + 30
    while tracker.top(5)[0].item_id != "b":
        assert time.monotonic() < deadline, "the recomputed list replaces the stale one"
        time.sleep(0.01)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_building_long_lived_data_holds_off_full_passes_and_freezes_what_was_built() -> None:
    import gc
    import weakref

    from attune.engine.background import building_long_lived

    assert gc.isenabled()
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    interval = sys.getswitchinterval()
    passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with building_long_lived():
            with building_long_lived():  # a model swap during a catalog re-read
                kept = [[k] for k in range(50_000)]  # lists: always tracked
                garbage = _Cycle()  # a request's cyclic garbage, meanwhile
                gone = weakref.ref(garbage)
                del garbage
                kept += [[k] for k in range(30_000)]  # the build goes on
                assert sys.getswitchinterval() < interval, "requests get the GIL back sooner"
            assert gc.get_threshold()[2] > thresholds[2], "held off until the outer build ends"
        assert 2 not in passes, "no full pass while building"
        assert 0 in passes, "young passes go on"
        assert gone() is None, "the requests' cyclic garbage is freed, not frozen"
        assert gc.get_threshold() == thresholds
        assert sys.getswitchinterval() == interval
        assert gc.get_freeze_count() >= frozen + len(kept), "full passes skip what was built"
        gc.disable()  # a process that runs without the collector keeps running without it
        with building_long_lived():
            pass
        assert not gc.isenabled()
    finally:
        gc.callbacks.remove(count)
        gc.enable()
        gc.unfreeze()


def test_giving_way_shortens_the_switch_interval_until_the_last_holder_leaves() -> None:
    from attune.engine.background import BUILD_SWITCH_SECONDS, building_long_lived, giving_way

    interval = sys.getswitchinterval()
    with giving_way():
        with building_long_lived():  # a catalog build meanwhile
            assert sys.getswitchinterval() == min(interval, BUILD_SWITCH_SECONDS)
        assert sys.getswitchinterval() < interval, "still held by the outer holder"
    assert sys.getswitchinterval() == interval


def test_a_refresh_asked_again_while_running_runs_once_more_and_no_more() -> None:
    from attune.engine.background import BackgroundRefresh

    runs: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def job() -> None:
        runs.append(len(runs))
        inside.set()
        assert release.wait(timeout=30)

    refresh = BackgroundRefresh(job, "test")
    refresh.start()
    assert inside.wait(timeout=30)
    refresh.start()  # plain: the running one is enough
    assert not refresh._again
    for _ in range(3):  # a change after the running read began: one more run for all three
        refresh.start(again=True)
    release.set()
    assert refresh.wait(timeout=30)
    assert runs == [0, 1]
    refresh.start()
    assert refresh.wait(timeout=30) and runs == [0, 1, 2]


def test_a_failing_refresh_asked_again_still_runs_again() -> None:
    from attune.engine.background import BackgroundRefresh

    calls, errors = [], []
    inside, release = threading.Event(), threading.Event()

    def job() -> None:
        calls.append(1)
        inside.set()
        assert release.wait(timeout=30)
        raise RuntimeError("database away")

    refresh = BackgroundRefresh(job, "test", on_error=lambda: errors.append(1))
    refresh.start()
    assert inside.wait(timeout=30)
    refresh.start(again=True)
    release.set()
    assert refresh.wait(timeout=30)
    assert len(calls) == 2 and len(errors) == 2 and not refresh.running
