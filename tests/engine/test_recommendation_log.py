"""The background recommendation log: nothing lost, written in batches, never blocking."""

from __future__ import annotations

import logging
import threading
import time

from attune.engine.decide import Recommendation, ScoredItem
from attune.engine.recommend import RecommendationLog


class SlowStore:
    """Records every batch it is given; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[dict]] = []
        self.delay = delay
        self.fail = fail

    def add(self, rows: list[dict]) -> int:
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("database down")
        self.batches.append(list(rows))
        return len(rows)

    @property
    def rows(self) -> list[dict]:
        return [row for batch in self.batches for row in batch]


def answer(k: int) -> Recommendation:
    return Recommendation(f"rec-{k}", [ScoredItem("i1", 0.5, "model")], "v1")


def test_flush_waits_for_every_row_recorded_from_many_threads() -> None:
    store = SlowStore(delay=0.01)
    log = RecommendationLog(store, batch=50, interval=0.02)

    def record(start: int) -> None:
        for k in range(start, start + 100):
            log.record(answer(k), f"u{k}", {"device": "web"})

    threads = [threading.Thread(target=record, args=(t * 100,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.flush()
    ids = sorted(row["recommendation_id"] for row in store.rows)
    assert ids == sorted(f"rec-{k}" for k in range(800))
    # rows are gathered: far fewer writes than rows, none above the batch size
    assert len(store.batches) < 100
    assert max(len(b) for b in store.batches) <= 50
    row = store.rows[0]
    assert row["items"] == [{"item_id": "i1", "score": 0.5, "source": "model", "position": 1}]
    assert row["context"] == {"device": "web"}


def test_rows_recorded_together_are_written_together() -> None:
    store = SlowStore()
    log = RecommendationLog(store, batch=500, interval=0.2)
    for k in range(30):
        log.record(answer(k), "u1", {})
    log.flush()
    assert [len(b) for b in store.batches] == [30]


def test_a_full_queue_drops_rows_without_blocking(caplog) -> None:
    store = SlowStore(delay=0.3)
    log = RecommendationLog(store, batch=1, interval=0.0, max_pending=3)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        for k in range(20):
            log.record(answer(k), "u1", {})
    assert time.perf_counter() - started < 0.25  # never waited for the slow store
    assert "queue full" in caplog.text
    log.flush()
    assert 3 <= len(store.rows) < 20


def test_a_failing_store_is_logged_and_flush_still_returns(caplog) -> None:
    log = RecommendationLog(SlowStore(fail=True), interval=0.0)
    with caplog.at_level(logging.ERROR):
        log.record(answer(1), "u1", {})
        log.flush()
    assert "could not write 1 recommendation log rows" in caplog.text


def test_flush_with_nothing_queued_returns_at_once() -> None:
    log = RecommendationLog(SlowStore(delay=5.0))
    started = time.perf_counter()
    log.flush()
    assert time.perf_counter() - started < 0.1


def test_recommendation_ids_are_unique_and_sort_by_time() -> None:
    """Ids made later sort later (the log's key index grows at its end), and none repeats
    even within one clock tick."""
    from attune.engine.decide import new_recommendation_id

    ids = [new_recommendation_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    stamps = [int(i[:16], 16) for i in ids]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] / 1e9 - time.time()) < 60  # the time part is the clock's
