"""Per-request views of the catalog that must cost microseconds: categories, regions,
titles and creation times, indexed by a model's item positions.

Built from the same catalog snapshot the filters use (see :mod:`attune.engine.filtering`)
and cached per (snapshot, item space), so they are rebuilt only when the catalog changes
or a new model version brings a new item space. Items the catalog does not describe
have no categories and no region limits: they are never blocked by a category the
person refused, nor hidden by region.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from attune.engine.filtering import CatalogFilters, CatalogSnapshot, catalog_rows, patched_rows
from attune.lru import Lru

NO_CATEGORIES: frozenset[str] = frozenset()
PATCHED_ORDER_MOST = 256
"""Changed items beyond which a patched snapshot's creation order is sorted anew (each
patched item costs a copy of the order's arrays)."""


@dataclass(frozen=True)
class SpaceView:
    """The catalog seen through one item space (a model's positions)."""

    categories: list[frozenset[str]]
    by_category: dict[str, np.ndarray]
    restricted: dict[int, frozenset[str]]  # position → regions it is limited to
    rows: np.ndarray  # catalog row per position (-1: not in the catalog)

    def positions_in(self, categories: list[str]) -> np.ndarray:
        parts = [self.by_category[c] for c in categories if c in self.by_category]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def outside_region(self, region: str | None) -> np.ndarray:
        """Positions of items not offered in ``region`` (none when region is unknown)."""
        if not region:
            return np.zeros(0, dtype=np.int64)
        return np.fromiter(
            (p for p, regions in self.restricted.items() if region not in regions), dtype=np.int64
        )


class CatalogView:
    """Catalog facts by item id or by a model's positions, cached per snapshot.

    When the filters read a changed catalog, the lookups, creation order and the item
    spaces in use (those asked for since the last change: a replaced model version's
    are not) are built for the new snapshot on that background thread, before any
    request sees it (:meth:`CatalogFilters.on_snapshot`); for a snapshot patched with a
    few written items, from the parent snapshot's, on the changed rows alone."""

    def __init__(self, filters: CatalogFilters) -> None:
        self.filters = filters
        self._views = Lru(32)  # (snapshot token, what) → lookup, space view, creation order
        self._space_ids: dict[str, np.ndarray] = {}  # space name → its item ids
        self._used: set[str] = set()  # space names asked for since the last change
        self._untried_used: dict[str, frozenset[str]] = {}  # version key → its tried items
        filters.on_snapshot(self._prepare)

    def snapshot(self) -> CatalogSnapshot:
        return self.filters.snapshot()

    def lookup(self) -> CatalogLookup:
        """Id lookups for the current snapshot (a dict read: pandas' indexer costs ~100 µs
        per call, and a request makes hundreds). Hold it for a loop over many items."""
        return self._lookup_for(self.snapshot())

    def _lookup_for(self, snapshot: CatalogSnapshot) -> CatalogLookup:
        key = (snapshot.token, "lookup")
        lookup = self._views.get(key)
        if lookup is None:
            parent = self._parents(snapshot, "lookup")
            lookup = CatalogLookup(snapshot, parent)  # type: ignore[arg-type]
            self._views.put(key, lookup)
        return lookup  # type: ignore[no-any-return]

    def _parents(self, snapshot: CatalogSnapshot, *what: str) -> object | None:
        """For a patched snapshot, its parent's view ``what`` (if still cached)."""
        return None if snapshot.parent is None else self._views.get((snapshot.parent, *what))

    def record(self, item_id: str) -> dict[str, Any] | None:
        return self.lookup().records.get(item_id)

    def title(self, item_id: str) -> str:
        record = self.record(item_id)
        title = record.get("title") if record else None
        return str(title) if title else f"item {item_id}"

    def categories_of(self, item_id: str) -> frozenset[str]:
        return self.lookup().categories_of(item_id)

    def spellings(self) -> Mapping[str, tuple[str, ...]]:
        """Every category the catalog uses, by its case-folded form."""
        return self.lookup().spellings

    def space(self, item_ids: np.ndarray, space: str) -> SpaceView:
        self._used.add(space)
        self._space_ids[space] = item_ids
        return self._space_for(self.snapshot(), item_ids, space)

    def _space_for(self, snapshot: CatalogSnapshot, item_ids: np.ndarray, space: str) -> SpaceView:
        key = (snapshot.token, space)
        view = self._views.get(key)
        if view is None:
            # the roles of a version share one item space (often not one array): one view
            # for them all
            twins = [
                self._views.get((snapshot.token, name))
                for name, ids in list(self._space_ids.items())
                if name != space and _same_ids(ids, item_ids)
            ]
            view = next((v for v in twins if v is not None), None)
            if view is None:
                parent = self._parents(snapshot, space)
                view = (
                    _patch(parent, snapshot, item_ids)  # type: ignore[arg-type]
                    if parent is not None
                    else _build(snapshot, item_ids)
                )
            self._views.put(key, view)
        return view  # type: ignore[no-any-return]

    def new_items(self, since: float, limit: int = 5_000) -> Iterator[NewItem]:
        """Catalog items created at or after ``since``, newest first (at most ``limit``).

        The catalog's items by creation time, newest first, are sorted once per
        snapshot; a call walks that order (``since`` moves with the clock, and
        re-sorting a large catalog inside a request would stall it)."""
        order = self._by_creation(self.snapshot())
        end = min(int(np.searchsorted(order.negated_times, -since, side="right")), limit)
        return order.newest(end)

    def untried_items(self, tried: frozenset[str], key: str) -> Iterator[NewItem]:
        """Catalog items whose id is not in ``tried`` (a model version's interacted items;
        ``key`` names the version), newest first where dated, then in catalog order.
        Sorted once per (snapshot, version), by the first request that asks (a pass
        over the catalog: ~0.1 s at 100,000 items), then kept up to date with each
        changed catalog on the background thread, as the creation order is."""
        return self._untried_for(self.snapshot(), tried, key).newest()

    def _untried_for(
        self, snapshot: CatalogSnapshot, tried: frozenset[str], key: str
    ) -> CreationOrder:
        self._untried_used[key] = tried
        view_key = (snapshot.token, "untried", key)
        found = self._views.get(view_key)
        if found is None:
            parent = self._parents(snapshot, "untried", key)
            if parent is not None and parent._tried != tried:  # type: ignore[attr-defined]
                parent = None  # another version's tried items: sorted anew
            found = CreationOrder(snapshot, self._lookup_for(snapshot), parent, tried)  # type: ignore[arg-type]
            self._views.put(view_key, found)
        return found  # type: ignore[no-any-return]

    def most_categories(self) -> int:
        """At least as many categories as any dated catalog item has (what
        :meth:`new_items` gives)."""
        return self._by_creation(self.snapshot()).widest

    def _by_creation(self, snapshot: CatalogSnapshot) -> CreationOrder:
        key = (snapshot.token, "by-creation")
        found = self._views.get(key)
        if found is None:
            parent = self._parents(snapshot, "by-creation")
            found = CreationOrder(snapshot, self._lookup_for(snapshot), parent)  # type: ignore[arg-type]
            self._views.put(key, found)
        return found  # type: ignore[no-any-return]

    def warm(self, spaces: dict[str, np.ndarray]) -> None:
        """Build the snapshot, id lookups, creation order and the given item spaces
        (name → item ids) now, before requests would pay for them."""
        snapshot = self.snapshot()
        self._by_creation(snapshot)
        for name, item_ids in spaces.items():
            self.space(item_ids, name)

    def _prepare(self, snapshot: CatalogSnapshot) -> None:
        """Build a re-read snapshot's views (see the class docstring). Views of older
        snapshots than the one requests use now go first: a feed of writes makes a new
        snapshot every few hundred milliseconds, and each one's lookup alone is a dict of
        every item."""
        published = self.filters.published
        live = {snapshot.token} | ({published.token} if published is not None else set())
        self._views.retain(lambda key: key[0] in live)  # type: ignore[index]
        used, self._used = self._used, set()
        untried, self._untried_used = self._untried_used, {}
        self._by_creation(snapshot)
        for key, tried in untried.items():
            self._untried_for(snapshot, tried, key)
        for name in used:
            item_ids = self._space_ids.get(name)
            if item_ids is not None:
                self._space_for(snapshot, item_ids, name)
        for name in set(self._space_ids) - used - self._used:
            self._space_ids.pop(name, None)  # a replaced version's spaces


class NewItem(NamedTuple):
    """A new catalog item (recently created, or untried), with what exploration checks
    about it."""

    item_id: str
    created_at: float
    categories: frozenset[str]
    record: dict[str, Any]
    open_to_all: bool
    """Available and not limited to regions: only a person's own exclusions, blocked
    categories or a filter can keep it out."""


class CreationOrder:
    """One snapshot's dated items, newest first (equal times in catalog order); or, given
    ``tried``, its items not in ``tried``, newest first where dated, then the undated
    (in catalog order).

    Each item's :class:`NewItem` is built the first time a request walks to it: requests
    only ever walk the newest, and building one for every item of a 100,000-item catalog
    took a third of a catalog change's preparation (0.6 of 2.5 s)."""

    def __init__(
        self,
        snapshot: CatalogSnapshot,
        lookup: CatalogLookup,
        parent: CreationOrder | None = None,
        tried: frozenset[str] | None = None,
    ) -> None:
        """``parent``: the order of the snapshot ``snapshot`` was patched from (only its
        changed rows are then placed again)."""
        self._lookup = lookup
        self._tried = tried
        if parent is not None and len(snapshot.changed) <= PATCHED_ORDER_MOST:
            self._patch(snapshot, parent)
            return
        records = snapshot.records
        holes = set(snapshot.holes.tolist())
        rows, keys = [], []
        for k, record in enumerate(records):
            key = self._key(record)
            if key is not None and k not in holes:
                rows.append(k)
                keys.append(key)
        times = np.asarray(keys, dtype=np.float64)
        order = np.argsort(times, kind="stable")
        self._rows = np.asarray(rows, dtype=np.int64)[order]  # catalog row of each entry
        self._dated = [records[k] for k in self._rows.tolist()]
        self.negated_times = times[order]
        """Each entry's negated creation time (+inf: undated), ascending."""
        self.widest = max((len(records[k].get("categories") or ()) for k in rows), default=0)
        """Categories of the most labelled item (labels as listed: never fewer)."""
        self._built: list[NewItem | None] = [None] * len(rows)

    def _key(self, record: dict[str, Any]) -> float | None:
        """Where ``record`` sorts (its negated creation time; +inf undated), or None when
        it is not in this order."""
        created = record.get("created_at")
        if self._tried is None:
            return None if created is None else -float(created)
        if str(record["item_id"]) in self._tried:
            return None
        return math.inf if created is None else -float(created)

    def _patch(self, snapshot: CatalogSnapshot, parent: CreationOrder) -> None:
        """The parent's order with the changed rows taken out and put back by their
        (new) place, equal places in catalog order, as a whole build places them.
        ``widest`` may stay above the true count (it is an upper bound)."""
        rows, negated = parent._rows, parent.negated_times
        dated, built = list(parent._dated), list(parent._built)
        changed = snapshot.changed
        gone = np.flatnonzero(np.isin(rows, changed))
        if len(gone):
            keep = np.ones(len(rows), dtype=bool)
            keep[gone] = False
            rows, negated = rows[keep], negated[keep]
            for k in reversed(gone.tolist()):
                del dated[k], built[k]
        widest = parent.widest
        holes = set(snapshot.holes.tolist())
        for row in changed.tolist():
            record = snapshot.records[row]
            time_key = self._key(record)
            if time_key is None or row in holes:
                continue
            low = int(np.searchsorted(negated, time_key, side="left"))
            high = int(np.searchsorted(negated, time_key, side="right"))
            at = low + int(np.searchsorted(rows[low:high], row))
            rows, negated = np.insert(rows, at, row), np.insert(negated, at, time_key)
            dated.insert(at, record)
            built.insert(at, None)
            widest = max(widest, len(record.get("categories") or ()))
        self._rows, self.negated_times, self._dated, self._built = rows, negated, dated, built
        self.widest = widest

    def newest(self, end: int | None = None) -> Iterator[NewItem]:
        """The first ``end`` items (all: None), newest first."""
        for k in range(len(self._built) if end is None else end):
            item = self._built[k]
            if item is None:  # two requests may both build it: the same item either way
                record = self._dated[k]
                created = float(-self.negated_times[k])
                item = _new_item(
                    self._lookup,
                    str(record["item_id"]),
                    created if math.isfinite(created) else 0.0,
                    record,
                )
                self._built[k] = item
            yield item


def _same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two item-id arrays hold the same ids in the same order."""
    return a is b or (a.shape == b.shape and bool(np.array_equal(a, b)))


def _new_item(
    lookup: CatalogLookup, item_id: str, created_at: float, record: dict[str, Any]
) -> NewItem:
    return NewItem(item_id, created_at, lookup.categories_of(item_id), record, _open_to_all(record))


def _open_to_all(record: dict[str, Any]) -> bool:
    return record.get("available") is not False and record.get("regions") is None


class CatalogLookup:
    """One snapshot's records by item id.

    Attributes:
        token: the snapshot's token.
        records: external item id → the item's fields (shared with the snapshot: read only).
    """

    def __init__(self, snapshot: CatalogSnapshot, parent: CatalogLookup | None = None) -> None:
        """``parent``: the lookup of the snapshot ``snapshot`` was patched from (only its
        changed rows are then read)."""
        self.token = snapshot.token
        self.records: dict[str, dict[str, Any]]
        self.spellings: dict[str, tuple[str, ...]]
        """Case-folded category → every spelling of it the catalog uses (a spelling
        whose items are all gone may stay: it matches nothing)."""
        ids, records = snapshot.rows, snapshot.records
        holes = set(snapshot.holes.tolist())
        if parent is None:
            self.records = dict(zip(ids.tolist(), records, strict=True))
            for row in holes:
                del self.records[ids[row]]
            self.spellings = _spelled({}, self.records.values())
            return
        self.records = dict(parent.records)
        written = []
        for row in snapshot.changed.tolist():
            if row in holes:
                self.records.pop(ids[row], None)
            else:
                self.records[ids[row]] = records[row]
                written.append(records[row])
        self.spellings = _spelled(parent.spellings, written)

    def categories_of(self, item_id: str) -> frozenset[str]:
        # built per call, not kept: a kept set per item touched is a long-lived object the
        # garbage collector's full passes then walk (they grew by ~10 per request)
        record = self.records.get(item_id)
        return frozenset(record.get("categories") or ()) if record else NO_CATEGORIES


def _spelled(
    known: dict[str, tuple[str, ...]], records: Iterable[dict[str, Any]]
) -> dict[str, tuple[str, ...]]:
    """``known`` with the category spellings of ``records`` added (``known`` itself when
    they bring none)."""
    added: dict[str, set[str]] = {}
    for record in records:
        for category in record.get("categories") or ():
            name = str(category)
            folded = name.casefold()
            if name not in known.get(folded, ()):
                added.setdefault(folded, set()).add(name)
    if not added:
        return known
    spellings = dict(known)
    for folded, names in added.items():
        spellings[folded] = tuple(sorted({*spellings.get(folded, ()), *names}))
    return spellings


def _build(snapshot: CatalogSnapshot, item_ids: np.ndarray) -> SpaceView:
    rows = catalog_rows(snapshot, item_ids)
    categories: list[frozenset[str]] = []
    members: dict[str, list[int]] = {}
    restricted: dict[int, frozenset[str]] = {}
    for position, row in enumerate(rows.tolist()):
        if row < 0:
            categories.append(NO_CATEGORIES)
            continue
        record = snapshot.records[row]
        cats = frozenset(str(c) for c in record.get("categories") or ())
        categories.append(cats)
        for c in cats:
            members.setdefault(c, []).append(position)
        regions = record.get("regions")
        if regions is not None:
            restricted[position] = frozenset(str(r) for r in regions)
    by_category = {c: np.asarray(p, dtype=np.int64) for c, p in members.items()}
    return SpaceView(categories, by_category, restricted, rows)


def _patch(parent: SpaceView, snapshot: CatalogSnapshot, item_ids: np.ndarray) -> SpaceView:
    """The view :func:`_build` would give for a patched snapshot, from its parent's:
    only the positions of changed rows are read again (rows never move in a patch)."""
    rows = patched_rows(parent.rows, snapshot, item_ids)
    # positions whose row changed, whether they hold it still, lost it (deleted) or
    # gained it (new to the catalog, or written again)
    changed = snapshot.changed
    positions = np.flatnonzero(np.isin(rows, changed) | np.isin(parent.rows, changed))
    categories = list(parent.categories)
    restricted = dict(parent.restricted)
    touched: set[str] = set()
    for position in positions.tolist():
        row = int(rows[position])
        record = snapshot.records[row] if row >= 0 else {}
        cats = frozenset(str(c) for c in record.get("categories") or ())
        if cats != categories[position]:
            touched |= cats ^ categories[position]
            categories[position] = cats
        regions = record.get("regions")
        if regions is None:
            restricted.pop(position, None)
        else:
            restricted[position] = frozenset(str(r) for r in regions)
    by_category = dict(parent.by_category)
    for category in touched:
        before = by_category.get(category, np.zeros(0, dtype=np.int64))
        kept = before[~np.isin(before, positions)]
        joined = [p for p in positions.tolist() if category in categories[p]]
        members = np.union1d(kept, np.asarray(joined, dtype=np.int64))
        if len(members):
            by_category[category] = members.astype(np.int64, copy=False)
        else:
            by_category.pop(category, None)
    return SpaceView(categories, by_category, restricted, rows)


def daypart(hour: int) -> str:
    """night (0–5), morning (6–11), afternoon (12–17), evening (18–23)."""
    return ("night", "morning", "afternoon", "evening")[hour // 6]


def clock_context(now: float | None = None) -> dict[str, str]:
    """Time context the server derives when the request does not say: UTC hour bucket."""
    moment = time.gmtime(time.time() if now is None else now)
    return {
        "daypart": daypart(moment.tm_hour),
        "day_of_week": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[moment.tm_wday],
    }
