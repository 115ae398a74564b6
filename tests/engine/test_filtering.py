"""Catalog filters on the serving path: what is cached, when it is re-read, what is allowed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from attune.engine.filtering import CatalogFilters
from attune.errors import ValidationError


class FakeCatalog:
    """The catalog calls filters make, counting the expensive one (whole reads)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.version = 0
        self.frames_read = 0

    def content_stamp(self) -> str:
        return str(self.version)

    def changes_since(self, stamp: str, limit: int = 10_000) -> None:
        return None  # no change log: a changed catalog is re-read whole

    def item_frame(self) -> pd.DataFrame:
        self.frames_read += 1
        return pd.DataFrame(self.rows)

    def write(self, rows: list[dict]) -> None:
        self.rows = rows
        self.version += 1


def catalog_rows(comedies: set[str]) -> list[dict]:
    return [
        {
            "item_id": item_id,
            "categories": ["Comedy"] if item_id in comedies else ["Drama"],
            "price": float(k),
            "created_at": time.time() - k * 86_400,
        }
        for k, item_id in enumerate(["i0", "i1", "i2", "i3"])
    ]


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_allowed_maps_the_catalog_onto_a_model_item_space():
    filters = CatalogFilters(FakeCatalog(catalog_rows({"i1", "i3"})))
    model_items = np.array(["i3", "x-not-in-catalog", "i0", "i1"])
    allowed = filters.allowed(filters.parse('"Comedy" in categories'), model_items, "v1/main")
    assert allowed.mask.tolist() == [True, False, False, True]
    assert allowed.index.tolist() == [0, 3]
    # a field-free filter is a constant: unknown items pass "true"
    everything = filters.allowed(filters.parse("true"), model_items, "v1/main")
    assert everything.index.tolist() == [0, 1, 2, 3]
    # reads a field, so the item the catalog lacks does not match even a negation
    negated = filters.allowed(filters.parse('"Western" not in categories'), model_items, "v1/m")
    assert negated.mask.tolist() == [True, False, True, True]


def test_masks_are_cached_and_the_catalog_is_read_once_while_unchanged():
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=0.0)
    condition = filters.parse("price < 2")
    first = filters.allowed(condition, np.array(["i0", "i1", "i2"]), "v1/main")
    again = filters.allowed(condition, np.array(["i0", "i1", "i2"]), "v1/main")
    assert again is first
    assert catalog.frames_read == 1  # the stamp was checked, the catalog not re-read
    assert filters.parse("price < 2") is condition


def test_a_changed_catalog_is_re_read_in_the_background_and_then_used():
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=0.0)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1]
    catalog.write(catalog_rows({"i2"}))
    # the request that notices the change is answered from the old snapshot...
    assert filters.allowed(comedy, items, "v1/main").index.tolist() in ([1], [2])
    wait_for(lambda: catalog.frames_read == 2 and not filters._reading)
    # ...and the next one from the new
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [2]


def test_a_write_through_this_process_is_read_at_once_not_at_the_next_period():
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=3600)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1]
    catalog.write(catalog_rows({"i2"}))
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1], "an hour's period"
    filters.written()
    wait_for(lambda: filters.allowed(comedy, items, "v1/main").index.tolist() == [2])


def test_a_write_during_a_running_check_is_followed_by_another(monkeypatch):
    """The running check may have read the stamp before the write: one more follows."""
    import threading

    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=3600)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    filters.allowed(comedy, items, "v1/main")
    reading, release = threading.Event(), threading.Event()
    stamp = catalog.content_stamp

    def slow_stamp() -> str:
        found = stamp()
        reading.set()
        release.wait(5)
        return found

    monkeypatch.setattr(catalog, "content_stamp", slow_stamp)
    filters.written()  # a check starts and reads the old stamp
    assert reading.wait(5)
    catalog.write(catalog_rows({"i3"}))
    filters.written()  # while it runs
    monkeypatch.setattr(catalog, "content_stamp", stamp)
    release.set()
    wait_for(lambda: filters.allowed(comedy, items, "v1/main").index.tolist() == [3])


def test_a_burst_of_writes_is_re_read_together_not_once_per_write(monkeypatch):
    """A catalog sync of single writes must not keep re-reading the catalog back to back
    beside the requests: re-reads for writes are spaced, and the last write still lands."""
    import attune.engine.filtering as filtering

    monkeypatch.setattr(filtering, "WRITE_RECHECK_SECONDS", 0.3)
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=3600)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    filters.allowed(comedy, items, "v1/main")
    for k in range(40):  # 0.4 s of writes
        catalog.write(catalog_rows({f"i{k % 4}"}))
        filters.written()
        time.sleep(0.01)
    wait_for(lambda: filters.allowed(comedy, items, "v1/main").index.tolist() == [39 % 4])
    assert catalog.frames_read <= 4, "the first, then at most one per spacing"


def test_invalidate_forces_a_synchronous_re_read():
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1]
    catalog.write(catalog_rows({"i3"}))
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1]  # within 5 s
    filters.invalidate()
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [3]


def test_filters_reading_now_are_re_evaluated_each_period(monkeypatch):
    catalog = FakeCatalog(catalog_rows(set()))
    filters = CatalogFilters(catalog, refresh_seconds=5.0)
    recent = filters.parse("created_at > now - 36h")  # i0 (today) and i1 (a day ago)
    items = np.array(["i0", "i1", "i2", "i3"])
    assert filters.allowed(recent, items, "v1/main").index.tolist() == [0, 1]
    later = time.time() + 86_400
    monkeypatch.setattr("attune.engine.expressions.time.time", lambda: later)
    clock = time.monotonic() + 10.0
    monkeypatch.setattr("attune.engine.filtering.time.monotonic", lambda: clock)
    assert filters.allowed(recent, items, "v1/main").index.tolist() == [0]
    assert catalog.frames_read == 1


def test_malformed_filters_are_not_cached_and_raise_each_time():
    filters = CatalogFilters(FakeCatalog([]))
    for _ in range(2):
        with pytest.raises(ValidationError):
            filters.parse("price <<< 3")


def test_an_empty_catalog_allows_nothing():
    filters = CatalogFilters(FakeCatalog([]))
    allowed = filters.allowed(filters.parse("available"), np.array(["i0", "i1"]), "v1/main")
    assert allowed.index.tolist() == []


def test_the_periodic_stamp_check_never_runs_in_the_request():
    """Checking the catalog's stamp scans it: requests must not wait for that."""
    import threading

    class SlowStamp(FakeCatalog):
        def __init__(self, rows: list[dict]) -> None:
            super().__init__(rows)
            self.checked_on: list[str] = []

        def content_stamp(self) -> str:
            self.checked_on.append(threading.current_thread().name)
            time.sleep(0.2)
            return super().content_stamp()

    catalog = SlowStamp(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=0.0)
    filters.snapshot()  # the very first read is the one that waits
    catalog.checked_on.clear()
    started = time.monotonic()
    filters.snapshot()
    assert time.monotonic() - started < 0.1
    wait_for(lambda: bool(catalog.checked_on) and not filters._reading)
    assert catalog.checked_on == ["attune-catalog-refresh"]


def test_a_changed_catalog_is_served_with_its_masks_and_views_already_built(monkeypatch):
    """What requests derive from a snapshot (the allowed items of the filters in use, the
    catalog views of the item spaces in use) is built on the refresh thread before the
    new snapshot is published: no request builds it (seconds at 100,000 items)."""
    import threading

    from attune.engine import catalog_view
    from attune.engine.catalog_view import CatalogView

    built_on: list[str] = []
    build = catalog_view._build

    def recording_build(snapshot, item_ids):
        built_on.append(threading.current_thread().name)
        return build(snapshot, item_ids)

    monkeypatch.setattr(catalog_view, "_build", recording_build)
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=0.0)
    view = CatalogView(filters)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [1]
    assert view.space(items, "v1/main").categories[1] == {"Comedy"}
    assert view.space(items, "v1/similar") is view.space(items, "v1/main"), "one array, one view"
    built_on.clear()

    catalog.write(catalog_rows({"i2"}))
    filters.snapshot()  # notices the change: re-read in the background
    wait_for(lambda: catalog.frames_read == 2 and not filters._reading)
    evaluated = []
    monkeypatch.setattr(
        type(comedy),
        "mask_records",
        lambda self, records: evaluated.append(1) or np.zeros(len(records), dtype=bool),
    )
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [2]
    assert view.space(items, "v1/main").categories[2] == {"Comedy"}
    assert view.space(items, "v1/similar").categories[2] == {"Comedy"}
    assert evaluated == [], "the request found the filter's mask built"
    assert built_on == ["attune-catalog-refresh"], "one view, built before publishing"

    newer = np.array(["i3", "i2", "i1", "i0"])  # a new model version's item space
    for change in (3, 4):  # one change while both versions serve, one after v1 is gone
        view.space(newer, "v2/main")
        built_on.clear()
        catalog.write(catalog_rows({"i3"} if change == 3 else {"i0"}))
        filters.snapshot()
        wait_for(lambda: catalog.frames_read == change and not filters._reading)  # noqa: B023
    assert view.space(newer, "v2/main").categories[3] == {"Comedy"}
    assert built_on == ["attune-catalog-refresh"], "only the space asked for since"


def test_a_failing_preparation_still_publishes_the_changed_catalog():
    """Catalog changes must reach requests even when building a view for them fails:
    the request then builds (or fails) on its own, as before preparation existed."""
    catalog = FakeCatalog(catalog_rows({"i1"}))
    filters = CatalogFilters(catalog, refresh_seconds=0.0)
    comedy = filters.parse('"Comedy" in categories')
    items = np.array(["i0", "i1", "i2", "i3"])
    filters.allowed(comedy, items, "v1/main")

    def broken(snapshot):
        raise RuntimeError("a listener bug")

    filters.on_snapshot(broken)
    catalog.write(catalog_rows({"i2"}))
    filters.snapshot()
    wait_for(lambda: catalog.frames_read == 2 and not filters._reading)
    assert filters.allowed(comedy, items, "v1/main").index.tolist() == [2]


def test_item_spaces_holding_the_same_ids_share_one_view(monkeypatch):
    """A version's roles load their item ids into separate arrays: equal ids, one view
    (at 100,000 items each view took a third of a second of a catalog change)."""
    from attune.engine import catalog_view
    from attune.engine.catalog_view import CatalogView

    builds = []
    build = catalog_view._build
    monkeypatch.setattr(
        catalog_view, "_build", lambda snapshot, ids: builds.append(1) or build(snapshot, ids)
    )
    view = CatalogView(CatalogFilters(FakeCatalog(catalog_rows({"i1"}))))
    main = np.array(["i0", "i1", "i2", "i3"], dtype=object)
    similar = np.array(["i0", "i1", "i2", "i3"], dtype=object)  # equal, not the same array
    other = np.array(["i1", "i0", "i2", "i3"], dtype=object)
    assert view.space(similar, "v1/similar") is view.space(main, "v1/main")
    assert view.space(other, "v1/other") is not view.space(main, "v1/main")
    assert view.space(other, "v1/other").categories[0] == {"Comedy"}
    assert len(builds) == 2


def test_new_items_come_newest_first_and_are_built_only_when_reached():
    from attune.engine.catalog_view import CatalogView

    now = time.time()
    rows = [
        {"item_id": "old", "categories": ["A"], "created_at": now - 90 * 86_400},
        {"item_id": "undated", "categories": ["A", "B", "C"], "created_at": None},
        {"item_id": "tie-first", "categories": ["B"], "created_at": now - 86_400},
        {"item_id": "newest", "categories": ["A", "B"], "created_at": now},
        {"item_id": "tie-second", "categories": [], "created_at": now - 86_400},
    ]
    view = CatalogView(CatalogFilters(FakeCatalog(rows)))
    recent = list(view.new_items(now - 30 * 86_400))
    assert [i.item_id for i in recent] == ["newest", "tie-first", "tie-second"]
    assert recent[0].categories == {"A", "B"} and recent[0].created_at == now
    assert type(recent[0].created_at) is float  # a plain float, as the catalog gave it
    assert recent[0].record["item_id"] == "newest" and recent[0].open_to_all
    assert [i.item_id for i in view.new_items(now - 365 * 86_400, limit=10)][-1] == "old"
    assert view.most_categories() == 2  # dated items only
    order = view._by_creation(view.snapshot())
    assert list(view.new_items(now - 30 * 86_400)) == recent  # built once, kept
    fresh = CatalogView(CatalogFilters(FakeCatalog(rows)))
    first = next(fresh.new_items(now - 30 * 86_400))
    built = fresh._by_creation(fresh.snapshot())._built
    assert first.item_id == "newest" and sum(item is not None for item in built) == 1
    assert order.widest == 2
