"""Interaction matrices: from stored events to weighted user × item matrices.

Id spaces: a dataset maps external ids (strings) to internal indices (rows for users,
columns for items). Models only see indices; the dataset translates.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from attune.store.protocols import HistoryEvent

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0
DAY_PARTS = 4
"""Time-of-day buckets: UTC hours [0, 6), [6, 12), [12, 18), [18, 24)."""

VALUE_MODES = ("ignore", "linear", "log1p")
SMALL = 256
"""Arrays up to this length (one person's history) take per-element paths that beat
vectorised sorting at that size."""


@dataclass(frozen=True)
class WeightPolicy:
    """How much one event counts.

    Attributes:
        type_weights: weight per event type; types absent here count 1.0, and a weight
            of 0 drops the event from the matrix.
        value_modes: per event type, how ``value`` scales the weight: ``ignore``,
            ``linear`` (weight × value) or ``log1p`` (weight × log(1 + value)), for
            quantities and play counts.
        half_life_days: if set, an event's weight halves every this many days before the
            newest event in the data.
    """

    type_weights: Mapping[str, float] = field(default_factory=dict)
    value_modes: Mapping[str, str] = field(default_factory=dict)
    half_life_days: float | None = None

    def counted(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The events of ``frame`` whose type has a positive weight (value and age aside)."""
        dropped = [t for t, w in self.type_weights.items() if w <= 0]
        return frame.loc[~frame["type"].isin(dropped)]

    def weights(self, types: np.ndarray, values: np.ndarray, ages_days: np.ndarray) -> np.ndarray:
        """Weights of events given their type, value and age (all arrays of one length)."""
        if len(types) <= SMALL:  # one person's history: a lookup each beats sorting
            weight = np.array([self.type_weights.get(str(t), 1.0) for t in types], np.float64)
        else:
            unique, inverse = np.unique(types.astype(str), return_inverse=True)
            per_type = np.array([self.type_weights.get(t, 1.0) for t in unique])
            weight = per_type[inverse]
        if len(types):
            for event_type, mode in self.value_modes.items():
                if mode == "ignore":
                    continue
                mask = (types == event_type) & np.isfinite(values)
                if mode == "linear":
                    weight[mask] *= np.maximum(values[mask], 0.0)
                elif mode == "log1p":
                    weight[mask] *= np.log1p(np.maximum(values[mask], 0.0))
                else:
                    raise ValueError(f"unknown value mode {mode!r}; use one of {VALUE_MODES}")
        if self.half_life_days:
            weight = weight * np.exp2(-np.maximum(ages_days, 0.0) / self.half_life_days)
        return weight


@dataclass
class InteractionDataset:
    """Weighted interactions, with the event-level arrays they were built from.

    Attributes:
        user_ids: external user ids; position = internal user index.
        item_ids: external item ids; position = internal item index.
        user_index, item_index, weight, timestamp: one entry per kept event, in arrival
            order: events with equal timestamps are ordered by their position here
            (:func:`arrival_order`), at training and at serving time alike.
        reference_time: the newest event time (UTC Unix seconds); "now" for decay.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_index: np.ndarray
    item_index: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray
    reference_time: float
    item_features: pd.DataFrame | None = None
    """Catalog metadata aligned with ``item_ids`` (row k = item k): item_id, title, text,
    categories, tags; None when no catalog is known. Content models read it."""
    event_context: np.ndarray | None = None
    """(n_events,) object array: each kept event's context dict (or None); None when the
    events were loaded without context. Segmented models read it."""
    user_traits: Mapping[str, Mapping[str, Any]] | None = None
    """External user id → traits dict; None when traits were not loaded."""
    _segment_values: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """users × items, float32; repeated (user, item) events add up."""
        coo = sp.coo_matrix(
            (self.weight.astype(np.float32), (self.user_index, self.item_index)),
            shape=(self.n_users, self.n_items),
        )
        matrix = coo.tocsr()
        matrix.sum_duplicates()
        return matrix

    @cached_property
    def item_position(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids.tolist())}

    @cached_property
    def user_position(self) -> dict[str, int]:
        return {user: u for u, user in enumerate(self.user_ids.tolist())}

    def segment_values(self, key: str) -> np.ndarray:
        """Per event, the label of segment key ``key`` (``traits.x`` or ``context.x``):
        object array of str, None where the event has no value (see
        :mod:`attune.features.segments`)."""
        from attune.features.segments import event_values

        if key not in self._segment_values:
            self._segment_values[key] = event_values(
                key, self.user_index, self.user_ids, self.event_context, self.user_traits
            )
        return self._segment_values[key]

    def window(self) -> dict[str, float | int]:
        """The data window a model trained on this dataset has seen."""
        return {
            "events": len(self.weight),
            "users": self.n_users,
            "items": self.n_items,
            "start": float(self.timestamp.min()) if len(self.timestamp) else 0.0,
            "end": float(self.reference_time),
        }


def build_dataset(
    frame: pd.DataFrame,
    policy: WeightPolicy,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
) -> InteractionDataset:
    """Build a dataset from events (columns user_id, item_id, type, value, timestamp).

    Events whose weight is zero or less are dropped; the rest keep the frame's order,
    which breaks ties between equal timestamps. ``items`` (the catalog: item_id and
    metadata columns) adds columns for catalog items with no interactions yet, after the
    interacted ones, and becomes the dataset's ``item_features``. An optional ``context``
    column (dicts) becomes ``event_context``; ``users`` (user_id, traits) becomes
    ``user_traits``.
    """
    timestamps = frame["timestamp"].to_numpy(dtype=np.float64)
    reference = float(timestamps.max()) if len(timestamps) else 0.0
    ages = (reference - timestamps) / SECONDS_PER_DAY
    weights = policy.weights(
        frame["type"].to_numpy(dtype=object),
        frame["value"].to_numpy(dtype=np.float64, na_value=np.nan),
        ages,
    )
    keep = weights > 0
    kept = frame.loc[keep]
    user_codes, user_ids = pd.factorize(kept["user_id"].astype(str), sort=True)
    item_codes, item_ids = pd.factorize(kept["item_id"].astype(str), sort=True)
    item_list = list(item_ids)
    features = None
    if items is not None and len(items):
        catalog = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
        known = set(item_list)
        item_list += sorted(set(catalog["item_id"]) - known)
        features = (
            catalog.set_index("item_id").reindex(item_list).rename_axis("item_id").reset_index()
        )
    return InteractionDataset(
        user_ids=np.asarray(user_ids, dtype=str),
        item_ids=np.asarray(item_list, dtype=str),
        user_index=user_codes.astype(np.int32),
        item_index=item_codes.astype(np.int32),
        weight=weights[keep],
        timestamp=timestamps[keep],
        reference_time=reference,
        item_features=features,
        event_context=kept["context"].to_numpy(dtype=object) if "context" in kept else None,
        user_traits=_traits(users),
    )


def _traits(users: pd.DataFrame | None) -> dict[str, Mapping[str, Any]] | None:
    if users is None:
        return None
    return {
        str(user): traits
        for user, traits in zip(users["user_id"], users["traits"], strict=True)
        if isinstance(traits, Mapping)
    }


def arrival_order(user_index: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Event positions grouped by person, each person's events oldest first.

    The one ordering rule of training and serving: by timestamp, and events with equal
    timestamps in the order they arrived — their position in the dataset, which the
    event store loads by (timestamp, received_at, event_id), the order it also returns a
    person's live history in. Never by item index.
    """
    return np.lexsort((np.arange(len(timestamp)), timestamp, user_index))


def day_part(timestamps: np.ndarray) -> np.ndarray:
    """The :data:`DAY_PARTS` bucket (0..3) of each UTC Unix time."""
    hours = np.mod(np.asarray(timestamps, dtype=np.float64), SECONDS_PER_DAY) / SECONDS_PER_HOUR
    return np.minimum((hours // (24 / DAY_PARTS)).astype(np.int64), DAY_PARTS - 1)


@dataclass(frozen=True)
class History:
    """People's histories over a model's items, one row per person.

    Attributes:
        weights: summed event weights per (person, item), float32 CSR.
        ranks: on the same pattern, 1 + how many of the person's events are newer than
            their newest event with that item (1 = the very latest thing they did).
        newest_time: (n_rows,) UTC time of each person's newest event (NaN without
            events); None when the history was built without times.
        day_parts: (n_rows, :data:`DAY_PARTS`) share of each person's events per UTC
            time-of-day bucket (zeros without events); None without times.
        context: (n_rows,) object array of each row's request context (a mapping of
            ``context.<key>`` values, or None); None when the query carries no context.
            Models that rank by context read it (:meth:`in_context`); others ignore it.

    A model applies its own recency preference with :meth:`weighted`: clock-free, so it
    works for bursts of activity and for data without meaningful timestamps.
    """

    weights: sp.csr_matrix
    ranks: sp.csr_matrix
    newest_time: np.ndarray | None = None
    day_parts: np.ndarray | None = None
    context: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape  # type: ignore[no-any-return]

    @property
    def nnz(self) -> int:
        return int(self.weights.nnz)

    def row_sizes(self) -> np.ndarray:
        return np.diff(self.weights.indptr)

    def __getitem__(self, rows: np.ndarray | slice) -> History:
        return History(
            self.weights[rows],
            self.ranks[rows],
            None if self.newest_time is None else self.newest_time[rows],
            None if self.day_parts is None else self.day_parts[rows],
            None if self.context is None else self.context[rows],
        )

    def in_context(self, contexts: Sequence[Mapping[str, Any] | None]) -> History:
        """The same rows, each asked in the given request context (one per row)."""
        if len(contexts) != self.shape[0]:
            raise ValueError(f"{len(contexts)} contexts for {self.shape[0]} rows")
        column = np.empty(len(contexts), dtype=object)
        for row, context in enumerate(contexts):
            column[row] = context
        return replace(self, context=column)

    def weighted(self, recency_half_life_events: float | None) -> sp.csr_matrix:
        """Weights, each halved for every ``recency_half_life_events`` newer events."""
        if not recency_half_life_events:
            return self.weights
        decay = np.exp2(-(self.ranks.data - 1.0) / recency_half_life_events).astype(np.float32)
        weights = self.weights
        return csr_of_parts(weights.data * decay, weights.indices, weights.indptr, weights.shape)

    @classmethod
    def from_matrix(cls, weights: sp.csr_matrix) -> History:
        """A history without order (every item as recent as the others)."""
        weights = sp.csr_matrix(weights, dtype=np.float32)
        ranks = weights.copy()
        ranks.data = np.ones_like(ranks.data)
        return cls(weights, ranks)


def history_matrix(
    histories: Sequence[Sequence[HistoryEvent]],
    item_position: Mapping[str, int],
    n_items: int,
    policy: WeightPolicy,
) -> History:
    """One row per person over a model's items, weighted like the training data.

    Each history is oldest first. Ages are measured from each person's own newest
    event, so a returning user's latest session counts most. Items the model does not
    know are skipped.
    """
    if len(histories) == 1:  # a live request: one person, no sorting by row
        return _one_history(histories[0], item_position, n_items, policy)
    rows, items, types, values, times = [], [], [], [], []
    for row, history in enumerate(histories):
        for event in history:
            rows.append(row)
            items.append(item_position.get(event.item_id, -1))
            types.append(event.type)
            values.append(np.nan if event.value is None else event.value)
            times.append(event.timestamp)
    return weighted_history(
        np.asarray(rows, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.asarray(types, dtype=object),
        np.asarray(values, dtype=np.float64),
        np.asarray(times, dtype=np.float64),
        n_rows=len(histories),
        n_items=n_items,
        policy=policy,
    )


def _one_history(
    history: Sequence[HistoryEvent],
    item_position: Mapping[str, int],
    n_items: int,
    policy: WeightPolicy,
) -> History:
    """:func:`history_matrix` of one person, the same numbers by a shorter path."""
    if not history:
        return weighted_history(
            *(np.zeros(0, dtype) for dtype in (np.int64, np.int64, object, float, float)),
            n_rows=1,
            n_items=n_items,
            policy=policy,
        )
    items = np.array([item_position.get(e.item_id, -1) for e in history], dtype=np.int64)
    types = np.array([e.type for e in history], dtype=object)
    values = np.array([np.nan if e.value is None else e.value for e in history], np.float64)
    times = np.array([e.timestamp for e in history], dtype=np.float64)
    newest = float(times.max())
    weights = policy.weights(types, values, (newest - times) / SECONDS_PER_DAY)
    counted = weights > 0
    rhythm = np.bincount(day_part(times[counted]), minlength=DAY_PARTS).astype(np.float64)
    if rhythm.sum() > 0:
        rhythm /= rhythm.sum()
    if len(history) <= SHORT_HISTORY:
        found, summed, newest_rank = _short_history_entries(items, weights, times)
    else:
        found, summed, newest_rank = _history_entries(items, weights, times)
    indptr = np.array([0, len(found)], dtype=np.int32)
    indices = found.astype(np.int32)
    weight_matrix = csr_of_parts(summed.astype(np.float32), indices, indptr, (1, n_items))
    rank_matrix = _same_pattern(weight_matrix, (newest_rank + 1.0).astype(np.float32))
    return History(weight_matrix, rank_matrix, np.array([newest]), rhythm[None, :])


SHORT_HISTORY = 64
"""Up to this many events, one person's entries are summed in plain Python: a dozen
numpy calls on a handful of values cost more than the loop."""


def _history_entries(
    items: np.ndarray, weights: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item positions ascending, summed weight, rank of the newest event counted) for
    one person's events; ``items`` -1 and weights ≤ 0 are skipped. Rank 0 is the newest
    event; at equal times the later one in the input is newer."""
    rank = np.empty(len(times), dtype=np.float64)
    rank[np.lexsort((-np.arange(len(times)), -times))] = np.arange(len(times))
    keep = (items >= 0) & (weights > 0)
    found, slot = np.unique(items[keep], return_inverse=True)
    summed = np.bincount(slot, weights=weights[keep], minlength=len(found))
    newest_rank = np.full(len(found), np.inf)
    np.minimum.at(newest_rank, slot, rank[keep])
    return found, summed, newest_rank


def _short_history_entries(
    items: np.ndarray, weights: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_history_entries` by a loop: the same sums, added in the same order."""
    item_list, weight_list, time_list = items.tolist(), weights.tolist(), times.tolist()
    newest_first = sorted(range(len(time_list)), key=lambda k: (-time_list[k], -k))
    rank = [0] * len(time_list)
    for position, k in enumerate(newest_first):
        rank[k] = position
    sums: dict[int, float] = {}
    ranks: dict[int, int] = {}
    for k, (item, weight) in enumerate(zip(item_list, weight_list, strict=True)):
        if item < 0 or not weight > 0:
            continue
        sums[item] = sums.get(item, 0.0) + weight
        if rank[k] < ranks.get(item, len(rank)):
            ranks[item] = rank[k]
    found = sorted(sums)
    return (
        np.array(found, dtype=np.int64),
        np.array([sums[i] for i in found], dtype=np.float64),
        np.array([ranks[i] for i in found], dtype=np.float64),
    )


_EMPTY_ROWS: dict[int, sp.csr_matrix] = {}


def csr_of_parts(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    shape: tuple[int, int],
    canonical: bool = True,
) -> sp.csr_matrix:
    """A CSR matrix of parts already valid for ``shape`` (``indices`` and ``indptr`` of
    one integer dtype), without the constructor's checks: for one person's rows, built
    on every request, those checks cost more than the arithmetic. ``canonical``: each
    row's indices are sorted and unique."""
    if shape[0] != 1:
        return sp.csr_matrix((data, indices, indptr), shape=shape)
    template = _EMPTY_ROWS.get(shape[1])
    if template is None:
        template = _EMPTY_ROWS[shape[1]] = sp.csr_matrix(shape, dtype=np.float32)
    twin = copy.copy(template)
    twin.data, twin.indices, twin.indptr = data, indices, indptr
    if not canonical:
        twin.has_canonical_format = False
        twin.has_sorted_indices = False
    return twin


def _same_pattern(matrix: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    """A CSR matrix with ``matrix``'s (canonical) pattern and ``data``, sharing its index
    arrays: a shallow copy skips the constructor's format checks, which cost more than
    the rest of one person's history."""
    twin = copy.copy(matrix)
    twin.data = data
    return twin


def weighted_history(
    rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    *,
    n_rows: int,
    n_items: int,
    policy: WeightPolicy,
) -> History:
    """Vectorised core of :func:`history_matrix`: one entry per event (``items`` -1 = unknown).

    Within a row, events are ranked newest first by time, ties broken by their order in
    the input (later = newer).
    """
    if len(rows) == 0:
        empty = sp.csr_matrix((n_rows, n_items), dtype=np.float32)
        return History(empty, empty.copy(), np.full(n_rows, np.nan), np.zeros((n_rows, DAY_PARTS)))
    newest = np.full(n_rows, -np.inf)
    np.maximum.at(newest, rows, times)
    ages = (newest[rows] - times) / SECONDS_PER_DAY
    weights = policy.weights(types, values, ages)
    rhythm = _day_parts(rows[weights > 0], times[weights > 0], n_rows)
    newest = np.where(np.isfinite(newest), newest, np.nan)
    # rank every event within its row: 0 = newest
    order = np.lexsort((-np.arange(len(rows)), -times, rows))
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(rows), dtype=np.float64)
    rank[order] = np.arange(len(order)) - run_start
    keep = (items >= 0) & (weights > 0)
    rows, items, weights, rank = rows[keep], items[keep], weights[keep], rank[keep]
    # one entry per (row, item): summed weight, rank of the newest event
    pair_order = np.lexsort((rank, items, rows))
    rows, items, weights, rank = (
        rows[pair_order],
        items[pair_order],
        weights[pair_order],
        rank[pair_order],
    )
    first = (
        np.r_[True, (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])]
        if len(rows)
        else np.zeros(0, bool)
    )
    starts = np.flatnonzero(first)
    summed = np.add.reduceat(weights, starts) if len(starts) else weights
    # entries are sorted by (row, item) and unique: CSR arrays directly, no COO detour
    shape = (n_rows, n_items)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[starts], minlength=n_rows))))
    indices = items[starts].astype(np.int32)
    weight_matrix = sp.csr_matrix((summed.astype(np.float32), indices, indptr), shape=shape)
    rank_matrix = _same_pattern(weight_matrix, (rank[starts] + 1.0).astype(np.float32))
    return History(weight_matrix, rank_matrix, newest, rhythm)


def _day_parts(rows: np.ndarray, times: np.ndarray, n_rows: int) -> np.ndarray:
    """(n_rows, DAY_PARTS): each row's share of events per time-of-day bucket."""
    cells = np.bincount(rows * DAY_PARTS + day_part(times), minlength=n_rows * DAY_PARTS)
    counts = cells.reshape(n_rows, DAY_PARTS).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def frame_history(
    frame: pd.DataFrame,
    user_ids: Sequence[str],
    item_position: Mapping[str, int],
    n_items: int,
    policy: WeightPolicy,
) -> History:
    """:func:`history_matrix` for many people from an event frame (evaluation, batch jobs).

    Args:
        frame: events with columns user_id, item_id, type, value, timestamp.
        user_ids: one output row per id, in this order (absent people get empty rows).
    """
    row_of = {u: r for r, u in enumerate(user_ids)}
    rows = frame["user_id"].astype(str).map(row_of)
    present = rows.notna().to_numpy()
    part = frame.loc[present]
    items = part["item_id"].astype(str).map(item_position).fillna(-1).astype(np.int64)
    return weighted_history(
        rows[present].to_numpy(dtype=np.int64),
        items.to_numpy(),
        part["type"].to_numpy(dtype=object),
        part["value"].to_numpy(dtype=np.float64, na_value=np.nan),
        part["timestamp"].to_numpy(dtype=np.float64),
        n_rows=len(user_ids),
        n_items=n_items,
        policy=policy,
    )
