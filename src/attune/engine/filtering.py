"""Filters applied to the catalog on the serving path, with the caching that keeps them fast.

Three caches, from slowest to fastest to rebuild:

1. A **catalog snapshot** (every item's fields as plain dicts, with a ``token``), read
   the first time a filter that reads fields is asked for. Every ``refresh_seconds`` (as
   for unavailable items), and at once after a write through this process or announced
   by another, a background thread checks the catalog's version (``content_stamp()``);
   if it moved, the items written since are re-read alone (the catalog's change log,
   ``changes_since``, names them: milliseconds) and patched into a new snapshot. A whole
   re-read (a second or more at 100,000 items, mostly JSON decoding) is left for what a
   patch cannot follow: more than :data:`PATCH_MOST_ITEMS` items, a bulk write logged
   without ids, a log pruned past the snapshot, more deleted items than
   :data:`HOLES_KEPT` (a deleted item leaves a hole in the rows, so that no other row
   moves; a whole read compacts them). Requests go on with the old snapshot meanwhile.
   Before a new snapshot is published, the same thread builds what requests derive from
   it: the masks of the filters in use (here) and the views of
   :class:`~attune.engine.catalog_view.CatalogView` (listeners of
   :meth:`CatalogFilters.on_snapshot`), from the parent's, re-evaluated on the changed
   rows alone, for a patched one; so a catalog change never stalls a request.
2. A **catalog mask** per (filter text, snapshot token): one bool per catalog row, from
   evaluating the filter row by row (one to a few microseconds per item), with the GIL
   handed over often meanwhile (``giving_way``). Filters that read ``now`` are also
   keyed by a ``refresh_seconds`` time bucket, so their masks are never older than
   that. :meth:`CatalogFilters.ready` says whether a filter's mask is built: the API
   decides a request whose filter is not ready on a worker thread, not on the loop;
   :meth:`CatalogFilters.build_later` builds masks a request will need (segment rules'
   filters) on a background thread.
3. **Allowed items** per (filter text, snapshot token, model item space): the mask mapped
   onto one recommender's item positions, with the indices of the allowed items, ready to
   pass as ``candidates``. Building it is one numpy gather; using it costs nothing more.

Items a model knows but the catalog does not (events about never-described items) match
no filter that reads a field; a filter that reads none (``true``) is a constant and never
touches the catalog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from attune.engine.background import BackgroundRefresh, building_long_lived, giving_way
from attune.engine.expression_eval import frame_records
from attune.engine.expressions import Filter, Loc, parse_filter
from attune.lru import Lru
from attune.store.protocols import CatalogStore

log = logging.getLogger(__name__)

CATALOG_REFRESH_SECONDS = 5.0
WRITE_RECHECK_SECONDS = 1.0
"""Least time from the end of one whole catalog re-read to the start of the next (at
least twice the re-read's own time): writes coming one after another are re-read
together."""
PATCH_RECHECK_SECONDS = 0.05
"""The same after a patch (the written items alone re-read): milliseconds of work."""
PATCH_MOST_ITEMS = 10_000
"""Items changed since the last read beyond which the catalog is re-read whole."""
HOLES_KEPT = 1_000
"""Deleted items patched out (their rows left as holes) beyond which, and beyond a tenth
of the catalog, the catalog is re-read whole instead (its rows compacted)."""
PARSED_CACHE_SIZE = 1_024
MASK_CACHE_SIZE = 128


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog as read at one moment.

    Attributes:
        token: distinct for every read; cached masks are keyed by it.
        stamp: the catalog's ``content_stamp()`` taken before the read.
        records: one dict of plain values per item (the columns of ``item_frame``).
        rows: external item id → position in ``records``.
        checked_at: ``time.monotonic()`` when the stamp was last found unchanged.
        parent: for a snapshot patched from another (only the items a write changed
            re-read), that one's token: what requests derive from it is patched too.
        changed: the rows of a patched snapshot whose record is new, changed or deleted
            (a hole now), ascending.
        holes: rows of items deleted since the last whole read, ascending: their
            records are placeholders (``{"item_id": id}``) that no filter allows and no
            view shows, so that no other row moves; a whole read has none.
    """

    token: int
    stamp: str
    records: list[dict[str, Any]]
    rows: pd.Index
    checked_at: float
    parent: int | None = None
    changed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    holes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class AllowedItems:
    """One filter's verdict over one recommender's item space (internal positions).

    Attributes:
        mask: (n_items,) bool, True where the item matches.
        index: positions of the matching items, ascending (for ``candidates=``).
    """

    mask: np.ndarray
    index: np.ndarray

    @classmethod
    def constant(cls, n_items: int, value: bool) -> AllowedItems:
        mask = np.full(n_items, value, dtype=bool)
        return cls(mask, np.flatnonzero(mask))


class CatalogFilters:
    """Parses filters and says which items of a model's item space they allow."""

    def __init__(
        self, catalog: CatalogStore, refresh_seconds: float = CATALOG_REFRESH_SECONDS
    ) -> None:
        self.catalog = catalog
        self.refresh_seconds = refresh_seconds
        self._parsed = Lru(PARSED_CACHE_SIZE)
        self._masks = Lru(MASK_CACHE_SIZE)
        self._snapshot: CatalogSnapshot | None = None
        self._token = 0
        self._lock = threading.Lock()
        self._refresh = BackgroundRefresh(self._refresh_in_background, "catalog-refresh")
        self._written = False  # the catalog was written since the running check began
        self._next_read_at = float("-inf")  # no re-read for writes starts before this
        self._token_lock = threading.Lock()
        self._in_use = Lru(MASK_CACHE_SIZE // 4)  # (text, space) → (filter, item ids)
        self._on_snapshot: list[Callable[[CatalogSnapshot], None]] = []
        self._wanted: dict[Hashable, Filter] = {}
        self._build_wanted = BackgroundRefresh(self._build_masks, "filter-masks")

    def on_snapshot(self, listener: Callable[[CatalogSnapshot], None]) -> None:
        """Call ``listener`` with each re-read snapshot, on the background thread, before
        requests see it (to build what they would otherwise build inside themselves)."""
        self._on_snapshot.append(listener)

    @property
    def published(self) -> CatalogSnapshot | None:
        """The snapshot requests use now, without checking the catalog (None: not read
        yet, or invalidated)."""
        return self._snapshot

    def parse(self, text: str, loc: Loc = ("query", "filter")) -> Filter:
        """The compiled filter for ``text`` (cached); raises ``ValidationError`` if
        malformed, its details located at ``loc``."""
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = parse_filter(text, loc=loc)
            self._parsed.put(text, parsed)
        return parsed  # type: ignore[no-any-return]

    def invalidate(self) -> None:
        """Forget the catalog snapshot: the next filtered request re-reads the catalog."""
        with self._lock:
            self._snapshot = None
            self._masks.clear()

    def snapshot(self) -> CatalogSnapshot:
        """The newest catalog snapshot; see the module docstring for how it is refreshed."""
        current = self._snapshot
        if current is None:
            with self._lock:
                # another thread may have read it while this one waited for the lock
                if self._snapshot is None:
                    self._snapshot = self._read(self.catalog.content_stamp())
                return self._snapshot
        if time.monotonic() - current.checked_at >= self.refresh_seconds:
            self._check(current)
        return current

    @property
    def _reading(self) -> bool:
        """Whether a background check (and maybe re-read) is running."""
        return self._refresh.running

    def _check(self, current: CatalogSnapshot) -> None:
        """Start a background check of the catalog's stamp (and a re-read if it moved).

        Not in the request: the stamp query scans the catalog (tens of milliseconds at
        100,000 items), and with decisions on the event loop every request would wait."""
        if self._snapshot is current:
            self._refresh.start()

    def written(self) -> None:
        """This process has just written the catalog (an item created, changed or made
        unavailable through the API): check it now, in the background, rather than at
        the next period, so the next requests see the change within the time a re-read
        takes (within :data:`WRITE_RECHECK_SECONDS` more right after another re-read).
        A check already running is followed by one more (it may have read the stamp
        before the write)."""
        self._written = True
        if self._snapshot is not None:
            self._refresh.start()

    def _refresh_in_background(self) -> None:
        while True:
            self._written = False
            # after a re-read, the next waits its turn: a catalog sync writing item after
            # item re-reads it every WRITE_RECHECK_SECONDS (or two re-reads' time), not
            # back to back beside the requests
            wait = self._next_read_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            started = time.monotonic()
            read = self._refresh_once()
            if read is not None:
                ended = time.monotonic()
                least = WRITE_RECHECK_SECONDS if read == "whole" else PATCH_RECHECK_SECONDS
                self._next_read_at = ended + max(least, 2 * (ended - started))
            if not self._written or self._snapshot is None:
                return

    def _refresh_once(self) -> str | None:
        """Check the stamp and, if it moved, re-read what changed; how: ``"patch"`` (the
        written items alone), ``"whole"`` or None (nothing read)."""
        current = self._snapshot
        if current is None:  # invalidated: the next request reads it
            return None
        read = None
        try:
            stamp = self.catalog.content_stamp()
            if stamp == current.stamp:
                fresh = replace(current, checked_at=time.monotonic())
            else:
                with building_long_lived():
                    read, fresh = "patch", self._patched(current)
                    if fresh is None:
                        read, fresh = "whole", self._read(stamp)
                    self._prepare(fresh)
        except Exception:
            log.exception("could not re-read the catalog for filters; keeping the old one")
            fresh = replace(current, checked_at=time.monotonic())  # retry after a period
        with self._lock:
            if self._snapshot is current:
                self._snapshot = fresh
                if fresh.token != current.token:  # entries keyed by an older token go
                    self._masks.retain(lambda key: key[1] == fresh.token)  # type: ignore[index]
        return read

    def _prepare(self, snapshot: CatalogSnapshot) -> None:
        """Build, for ``snapshot``, the allowed items of the filters in use and what the
        listeners derive, before it is published. A step that fails is logged and left
        to the requests (the snapshot is still published: catalog changes must arrive)."""
        steps: list[Callable[[], Any]] = [
            partial(self._allowed_in, snapshot, condition, item_ids, space)
            for (_, space), (condition, item_ids) in self._in_use.items()
        ]
        steps += [partial(listener, snapshot) for listener in self._on_snapshot]
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("could not prepare the new catalog snapshot for requests")

    def _read(self, stamp: str) -> CatalogSnapshot:
        frame = self.catalog.item_frame()
        ids = frame["item_id"].astype(str).tolist() if "item_id" in frame else []
        return CatalogSnapshot(
            self._next_token(),
            stamp,
            frame_records(frame),
            pd.Index(ids, dtype=object),
            time.monotonic(),
        )

    def _next_token(self) -> int:
        with self._token_lock:
            self._token += 1
            return self._token

    def _patched(self, current: CatalogSnapshot) -> CatalogSnapshot | None:
        """``current`` with the items written or deleted since it was read re-read alone
        (the catalog's change log names them; a deleted item's row becomes a hole), or
        None when a whole re-read is needed: the log does not say, too many changed, or
        too many holes. Reading 100,000 items takes a second or more; a write's few,
        milliseconds."""
        changes = self.catalog.changes_since(current.stamp, PATCH_MOST_ITEMS)
        if changes is None:
            return None
        stamp, ids = changes
        fresh = frame_records(self.catalog.item_frame(ids)) if ids else []
        written = {str(record["item_id"]): record for record in fresh}
        rows = current.rows.get_indexer(pd.Index(ids, dtype=object)).tolist() if ids else []
        records = list(current.records)
        holes = set(current.holes.tolist())
        changed, added = [], []
        for item_id, row in zip(ids, rows, strict=True):
            record = written.get(item_id)
            if record is None:  # deleted (or never in the catalog: an events-only item)
                if row >= 0 and row not in holes:
                    records[row] = {"item_id": item_id}
                    holes.add(row)
                    changed.append(row)
                continue
            if row < 0:
                row = len(records)
                records.append(record)
                added.append(item_id)
            else:
                records[row] = record
                holes.discard(row)
            changed.append(row)
        if not changed:
            return replace(current, stamp=stamp, checked_at=time.monotonic())
        if len(holes) > max(HOLES_KEPT, len(records) // 10):
            return None  # so many deleted: a whole read compacts the rows
        return CatalogSnapshot(
            self._next_token(),
            stamp,
            records,
            _appended(current.rows, added) if added else current.rows,
            time.monotonic(),
            parent=current.token,
            changed=np.asarray(sorted(changed), dtype=np.int64),
            holes=np.asarray(sorted(holes), dtype=np.int64),
        )

    def ready(self, condition: Filter) -> bool:
        """Whether ``condition`` applies without being evaluated over the whole catalog
        first: it reads no field, or the current snapshot's mask of it is cached. (A new
        text costs one to a few microseconds per item: ~0.2 s at 100,000 items.)"""
        if not condition.uses_fields:
            return True
        snapshot = self._snapshot
        return (
            snapshot is not None
            and self._masks.get(self._mask_key(condition, snapshot)) is not None
        )

    def build_later(self, conditions: list[Filter]) -> None:
        """Evaluate the masks of ``conditions`` on a background thread (those not built
        yet), so requests that will need them find them ready."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        with self._lock:
            for condition in conditions:
                self._wanted.setdefault(self._mask_key(condition, snapshot), condition)
        self._build_wanted.start()

    def _build_masks(self) -> None:
        while True:
            with self._lock:
                if not self._wanted:
                    return
                _, condition = self._wanted.popitem()
            self.catalog_mask(condition, self.snapshot())

    def catalog_mask(self, condition: Filter, snapshot: CatalogSnapshot) -> np.ndarray:
        """(n_catalog_items,) bool: which rows of ``snapshot`` match ``condition``."""
        key = self._mask_key(condition, snapshot)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._patched_mask(condition, snapshot)
            if mask is None:
                with giving_way():  # requests of the process keep moving meanwhile
                    mask = condition.mask_records(snapshot.records)
                mask[snapshot.holes] = False  # deleted items match nothing
            self._masks.put(key, mask)
        return mask  # type: ignore[no-any-return]

    def _patched_mask(self, condition: Filter, snapshot: CatalogSnapshot) -> np.ndarray | None:
        """A patched snapshot's mask from its parent's, re-evaluated on the changed rows
        alone (a filter reads one item at a time); None without the parent's."""
        if snapshot.parent is None:
            return None
        parent = self._masks.get(self._mask_key(condition, snapshot, snapshot.parent))
        if parent is None:
            return None
        mask = np.zeros(len(snapshot.records), dtype=bool)
        mask[: len(parent)] = parent
        changed = snapshot.changed
        mask[changed] = condition.mask_records([snapshot.records[row] for row in changed.tolist()])
        mask[snapshot.holes] = False
        return mask

    def allowed(self, condition: Filter, item_ids: np.ndarray, space: str) -> AllowedItems:
        """Which of ``item_ids`` (one recommender's item space) ``condition`` allows.

        Args:
            condition: a parsed filter.
            item_ids: (n_items,) external ids by internal position.
            space: a name unique to this item space (model version and role); with the
                filter text and the snapshot it keys the cache.
        """
        if not condition.uses_fields:
            return AllowedItems.constant(len(item_ids), condition.matches_unknown_item())
        return self._allowed_in(self.snapshot(), condition, item_ids, space)

    def _allowed_in(
        self, snapshot: CatalogSnapshot, condition: Filter, item_ids: np.ndarray, space: str
    ) -> AllowedItems:
        key = ("allowed", snapshot.token, condition.text, self._bucket(condition), space)
        allowed = self._masks.get(key)
        if allowed is None:
            self._in_use.put((condition.text, space), (condition, item_ids))
            rows = self._rows(snapshot, item_ids, space)
            catalog_mask = self.catalog_mask(condition, snapshot)
            # items missing from the catalog (row -1) match no filter that reads a field
            mask = np.zeros(len(item_ids), dtype=bool)
            known = rows >= 0
            mask[known] = catalog_mask[rows[known]]
            allowed = AllowedItems(mask, np.flatnonzero(mask))
            self._masks.put(key, allowed)
        return allowed  # type: ignore[no-any-return]

    def _mask_key(
        self, condition: Filter, snapshot: CatalogSnapshot, token: int | None = None
    ) -> tuple[Hashable, ...]:
        token = snapshot.token if token is None else token
        return ("catalog", token, condition.text, self._bucket(condition))

    def _bucket(self, condition: Filter) -> int:
        """For filters that read ``now``, the current ``refresh_seconds`` time slot."""
        if not condition.uses_now:
            return 0
        return int(time.monotonic() // max(self.refresh_seconds, 1e-3))

    def rows_of(self, snapshot: CatalogSnapshot, item_ids: np.ndarray, space: str) -> np.ndarray:
        """The catalog row in ``snapshot`` of each of one item space's ``item_ids`` (-1:
        not in the catalog), cached per snapshot and space."""
        return self._rows(snapshot, item_ids, space)

    def _rows(self, snapshot: CatalogSnapshot, item_ids: np.ndarray, space: str) -> np.ndarray:
        """Catalog row of each model item (-1 where absent), cached per snapshot and space."""
        key = ("rows", snapshot.token, space)
        rows = self._masks.get(key)
        if rows is None:
            parent = (
                None
                if snapshot.parent is None
                else self._masks.get(("rows", snapshot.parent, space))
            )
            rows = (
                catalog_rows(snapshot, item_ids)
                if parent is None
                else patched_rows(parent, snapshot, item_ids)  # type: ignore[arg-type]
            )
            self._masks.put(key, rows)
        return rows  # type: ignore[no-any-return]


def _appended(rows: pd.Index, added: list[str]) -> pd.Index:
    """``rows`` with ``added`` after them, still of object dtype: ``Index.append`` infers
    pandas' string dtype, whose every lookup hashes all 100,000 ids again (17 ms)."""
    ids = np.concatenate([rows.to_numpy(dtype=object), np.asarray(added, dtype=object)])
    return pd.Index(ids, dtype=object)


def catalog_rows(snapshot: CatalogSnapshot, item_ids: np.ndarray) -> np.ndarray:
    """The catalog row of each of ``item_ids`` in ``snapshot`` (-1: not in the catalog)."""
    rows = snapshot.rows.get_indexer(pd.Index(item_ids.astype(str), dtype=object))
    if len(snapshot.holes):
        rows[np.isin(rows, snapshot.holes)] = -1
    return rows


def patched_rows(parent: np.ndarray, snapshot: CatalogSnapshot, item_ids: np.ndarray) -> np.ndarray:
    """:func:`catalog_rows` for a patched snapshot, from its parent's: rows never move in
    a patch; an item deleted in it loses its row, one written may gain one (new to the
    catalog, or written again after a delete)."""
    changed = snapshot.changed
    deleted = changed[np.isin(changed, snapshot.holes)] if len(snapshot.holes) else changed[:0]
    rows = parent
    if len(deleted):
        rows = parent.copy()
        rows[np.isin(rows, deleted)] = -1
    if len(deleted) < len(changed):  # something written
        absent = np.flatnonzero(parent < 0)
        if len(absent):
            rows = rows.copy() if rows is parent else rows
            rows[absent] = catalog_rows(snapshot, item_ids[absent])
    return rows
