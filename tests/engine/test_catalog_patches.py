"""A catalog write is applied to the serving snapshot by re-reading the written items
alone (the catalog's change log names them), and everything derived from the snapshot
is patched to what a whole re-read would have built."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytest

from attune.engine.catalog_view import CatalogView, _build
from attune.engine.filtering import CatalogFilters
from attune.store.sql.catalog import SqlCatalogStore
from attune.store.sql.engine import make_engine, migrate

CATEGORIES = ["Comedy", "Drama", "Horror", "Kids"]
SAME_DAY = time.time() - 3 * 86_400
FILTERS = ['"Comedy" in categories', "available and price < 50", "price > 20 or not available"]


class CountingCatalog(SqlCatalogStore):
    """The SQLite catalog, counting whole reads apart from reads of a few items."""

    whole_reads = 0
    part_reads = 0

    def item_frame(self, item_ids: Any = None) -> Any:
        if item_ids is None:
            self.whole_reads += 1
        else:
            self.part_reads += 1
        return super().item_frame(item_ids)


def random_item(rng: random.Random, item_id: str) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "title": f"Title {rng.randint(0, 999)}",
        "text": None,
        "categories": rng.sample(CATEGORIES, rng.randint(0, 2)),
        "tags": [],
        "language": None,
        "translations": None,
        "regions": rng.choice([None, ["EU"], ["EU", "US"]]),
        "available": rng.random() > 0.2,
        "price": rng.choice([None, float(rng.randint(1, 99))]),
        # dates alone (one time for many items) as well as exact times
        "created_at": rng.choice([None, SAME_DAY, time.time() - rng.uniform(0, 60 * 86_400)]),
        "properties": None,
        "updated_at": time.time(),
    }


@pytest.fixture
def catalog(tmp_path) -> CountingCatalog:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    return CountingCatalog(engine)


def caught_up(filters: CatalogFilters, catalog: SqlCatalogStore) -> Any:
    """Tell the filters of a write and wait for the snapshot that holds it."""
    filters.written()
    deadline = time.monotonic() + 10
    while (snapshot := filters.snapshot()).stamp != catalog.content_stamp():
        assert time.monotonic() < deadline, "the write never reached the snapshot"
        time.sleep(0.005)
    return snapshot


def by_id(snapshot: Any) -> dict[str, dict[str, Any]]:
    """The items a snapshot holds (the holes deleted items leave are not items)."""
    holes = set(snapshot.holes.tolist())
    pairs = zip(snapshot.rows.tolist(), snapshot.records, strict=True)
    return {item_id: record for row, (item_id, record) in enumerate(pairs) if row not in holes}


def assert_same_as_a_whole_read(view: CatalogView, catalog: SqlCatalogStore, space: Any) -> None:
    fresh_filters = CatalogFilters(SqlCatalogStore(catalog.engine))
    fresh = fresh_filters.snapshot()
    patched = view.snapshot()
    assert by_id(patched) == by_id(fresh)
    item_ids = np.asarray(space, dtype=object)
    for text in FILTERS:
        condition = view.filters.parse(text)
        mask = view.filters.allowed(condition, item_ids, "v1/main").mask
        expected = fresh_filters.allowed(condition, item_ids, "v1/main").mask
        assert mask.tolist() == expected.tolist(), text
        # over the whole catalog too: a deleted item's hole matches no filter
        rows = view.filters.catalog_mask(condition, patched).tolist()
        ids = patched.rows.tolist()
        whole_mask = fresh_filters.catalog_mask(condition, fresh).tolist()
        whole = dict(zip(fresh.rows.tolist(), whole_mask, strict=True))
        assert dict(zip(ids, rows, strict=True)) == {i: whole.get(i, False) for i in ids}, text
    got, want = view.space(item_ids, "v1/main"), _build(fresh, item_ids)
    assert got.categories == want.categories
    assert got.restricted == want.restricted
    # each position's catalog item (rows themselves may differ: a deleted item's row is
    # a hole in a patched snapshot, gone from a whole read)
    assert [patched.rows[r] if r >= 0 else None for r in got.rows.tolist()] == [
        fresh.rows[r] if r >= 0 else None for r in want.rows.tolist()
    ]
    assert {c: p.tolist() for c, p in got.by_category.items()} == {
        c: p.tolist() for c, p in want.by_category.items()
    }
    assert view.lookup().records == by_id(fresh)
    fresh_view = CatalogView(fresh_filters)
    since = time.time() - 30 * 86_400
    # newest first; equal times (and undated untried items) in catalog order, which is
    # the database's row order in a whole read (arbitrary: an item deleted and written
    # again moves to the end there, keeps its row in a patch): compared as groups
    assert in_time_groups(view.new_items(since)) == in_time_groups(fresh_view.new_items(since))
    tried = frozenset(space[::3])
    assert in_time_groups(view.untried_items(tried, "v1")) == in_time_groups(
        fresh_view.untried_items(tried, "v1")
    )


def in_time_groups(items: Any) -> list[tuple[float, set[str]]]:
    groups: list[tuple[float, set[str]]] = []
    for item in items:
        if groups and groups[-1][0] == item.created_at:
            groups[-1][1].add(item.item_id)
        else:
            groups.append((item.created_at, {item.item_id}))
    return groups


def test_writes_are_patched_in_and_match_a_whole_read(catalog):
    rng = random.Random(7)
    catalog.upsert_items([random_item(rng, f"i{k}") for k in range(40)])
    filters = CatalogFilters(catalog)
    view = CatalogView(filters)
    # the model knows some items the catalog does not have yet, and one it never will
    space = [f"i{k}" for k in range(0, 50, 2)] + ["events-only"]
    for text in FILTERS:  # filters in use before the writes
        filters.allowed(filters.parse(text), np.asarray(space, dtype=object), "v1/main")
    view.space(np.asarray(space, dtype=object), "v1/main")
    view.new_items(time.time() - 30 * 86_400)
    list(view.untried_items(frozenset(space[::3]), "v1"))  # a placement exploring them
    whole_reads = catalog.whole_reads
    for step in range(40):
        ids = rng.sample([f"i{k}" for k in range(52)], rng.randint(1, 4))
        if rng.random() < 0.3:  # deleted (also ones deleted before, or never written)
            catalog.delete_items(ids)
        else:  # written: new, changed, or written again after a delete
            catalog.upsert_items([random_item(rng, item_id) for item_id in ids])
        snapshot = caught_up(filters, catalog)
        assert snapshot.parent is not None, f"step {step} was re-read whole"
        # what requests walk was prepared beside them, not left to the first one
        assert (snapshot.token, "untried", "v1") in view._views._data
        assert (snapshot.token, "by-creation") in view._views._data
        assert_same_as_a_whole_read(view, catalog, space)
    assert catalog.whole_reads == whole_reads  # every write was applied alone
    # items added keep the id index of object dtype (pandas' string dtype, which
    # Index.append infers, hashes every id again on each lookup)
    assert filters.snapshot().rows.dtype == object
    # views of snapshots older than the one in use are let go
    assert len({key[0] for key in view._views._data}) <= 2


def test_a_deleted_item_leaves_a_hole_until_a_whole_read_compacts_them(catalog, monkeypatch):
    from attune.engine import filtering

    rng = random.Random(3)
    catalog.upsert_items([random_item(rng, f"i{k}") for k in range(10)])
    filters = CatalogFilters(catalog)
    view = CatalogView(filters)
    space = [f"i{k}" for k in range(10)]
    view.space(np.asarray(space, dtype=object), "v1/main")
    before = catalog.whole_reads
    catalog.delete_items(["i3"])
    snapshot = caught_up(filters, catalog)
    assert snapshot.parent is not None and catalog.whole_reads == before
    assert "i3" not in by_id(snapshot) and "i3" not in view.lookup().records
    assert_same_as_a_whole_read(view, catalog, space)
    # deleting what the catalog never held changes nothing it holds: no new snapshot
    catalog.delete_items(["never-described"])
    assert caught_up(filters, catalog).token == snapshot.token
    # past the holes a snapshot keeps, a whole read compacts them
    monkeypatch.setattr(filtering, "HOLES_KEPT", 1)
    catalog.delete_items(["i4"])
    snapshot = caught_up(filters, catalog)
    assert snapshot.parent is None and catalog.whole_reads == before + 1
    assert len(snapshot.holes) == 0 and "i4" not in snapshot.rows
    assert_same_as_a_whole_read(view, catalog, space)


def test_another_process_writes_are_patched_in_at_the_periodic_check(catalog):
    rng = random.Random(5)
    catalog.upsert_items([random_item(rng, f"i{k}") for k in range(10)])
    filters = CatalogFilters(catalog, refresh_seconds=0.05)
    filters.snapshot()
    other = SqlCatalogStore(catalog.engine)  # another process on the same database
    other.upsert_items([{**random_item(rng, "i4"), "title": "Renamed"}])
    deadline = time.monotonic() + 10
    while filters.snapshot().stamp != other.content_stamp():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    snapshot = filters.snapshot()
    assert snapshot.parent is not None
    assert by_id(snapshot)["i4"]["title"] == "Renamed"


def test_a_bulk_write_too_large_to_log_is_read_whole(catalog, monkeypatch):
    from attune.store.sql import catalog as sql_catalog

    rng = random.Random(9)
    catalog.upsert_items([random_item(rng, f"i{k}") for k in range(5)])
    filters = CatalogFilters(catalog)
    filters.snapshot()
    monkeypatch.setattr(sql_catalog, "LOGGED_IDS", 3)
    before = catalog.whole_reads
    catalog.upsert_items([random_item(rng, f"n{k}") for k in range(4)])
    snapshot = caught_up(filters, catalog)
    assert snapshot.parent is None and catalog.whole_reads == before + 1
    assert {f"n{k}" for k in range(4)} <= set(snapshot.rows)
