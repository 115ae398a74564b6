"""User and item aggregates of an interaction dataset, for rankers that take features.

Everything is vectorised over the event arrays of an
:class:`~attune.features.interactions.InteractionDataset` and aligned with its internal
indices: item arrays have ``dataset.n_items`` entries (row k = item k), user arrays
``dataset.n_users``. Times are measured in days before ``dataset.reference_time`` (the
newest event), counts as ``log1p``. A quantity that does not exist (the age of an item
nobody interacted with) is NaN, which tree learners treat as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp

from attune.features.interactions import (
    DAY_PARTS,
    SECONDS_PER_DAY,
    InteractionDataset,
    day_part,
)


@dataclass(frozen=True)
class ItemAggregates:
    """Per-item statistics, each a float64 array of length ``n_items``.

    Attributes:
        log_count: log1p(number of events with the item).
        log_users: log1p(number of distinct people who had the item).
        log_popularity_7d: log1p(Σ over events of 2^(-age / 7 days)).
        log_popularity_30d: log1p(Σ over events of 2^(-age / 30 days)).
        days_since_first: days from the item's first event to the reference time.
        days_since_last: days from the item's newest event to the reference time.
        mean_age_days: mean age of the item's events in days (when it was in fashion).
        trend_7d: share of the item's events in the last 7 days (0 without events).

    Ages are NaN for items without events (catalog-only items).
    """

    log_count: np.ndarray
    log_users: np.ndarray
    log_popularity_7d: np.ndarray
    log_popularity_30d: np.ndarray
    days_since_first: np.ndarray
    days_since_last: np.ndarray
    mean_age_days: np.ndarray
    trend_7d: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The arrays by attribute name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def matrix(self) -> np.ndarray:
        """(n_items, n_aggregates) float32, columns in :meth:`columns` order."""
        return np.column_stack(list(self.columns().values())).astype(np.float32)

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> ItemAggregates:
        return cls(**{f.name: np.asarray(columns[f.name]) for f in fields(cls)})


@dataclass(frozen=True)
class UserAggregates:
    """Per-person statistics, arrays of length ``n_users`` (``time_of_day``: (n_users, 4)).

    Attributes:
        log_count: log1p(number of events).
        log_items: log1p(number of distinct items).
        days_since_last: days from the person's newest event to the reference time
            (NaN without events).
        mainstreamness: mean item ``log_count`` over the person's distinct items (0
            without events): high for people who stick to what everyone has.
        time_of_day: fraction of the person's events per 6-hour UTC bucket
            ([0, 6), [6, 12), [12, 18), [18, 24)); zeros without events.
    """

    log_count: np.ndarray
    log_items: np.ndarray
    days_since_last: np.ndarray
    mainstreamness: np.ndarray
    time_of_day: np.ndarray


def _event_ages_days(dataset: InteractionDataset) -> np.ndarray:
    return np.maximum(dataset.reference_time - dataset.timestamp, 0.0) / SECONDS_PER_DAY


def _group_min_max(keys: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest ``values`` per key in ``range(n)`` (NaN for absent keys)."""
    order = np.lexsort((values, keys))
    sorted_keys, sorted_values = keys[order], values[order]
    starts = np.searchsorted(sorted_keys, np.arange(n), side="left")
    ends = np.searchsorted(sorted_keys, np.arange(n), side="right")
    present = ends > starts
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    low[present] = sorted_values[starts[present]]
    high[present] = sorted_values[ends[present] - 1]
    return low, high


def item_aggregates(
    dataset: InteractionDataset,
    half_lives_days: tuple[float, float] = (7.0, 30.0),
    trend_days: float = 7.0,
) -> ItemAggregates:
    """Popularity, freshness and trend of every item (see :class:`ItemAggregates`).

    Args:
        dataset: the events; ages are measured from ``dataset.reference_time``.
        half_lives_days: half-lives of the two decayed popularities, in days.
        trend_days: the recent window of ``trend_7d``, in days.
    """
    n = dataset.n_items
    items = np.asarray(dataset.item_index, dtype=np.int64)
    ages = _event_ages_days(dataset)
    count = np.bincount(items, minlength=n).astype(np.float64)
    users = np.bincount(dataset.matrix.indices, minlength=n).astype(np.float64)
    decayed = [
        np.bincount(items, weights=np.exp2(-ages / half_life), minlength=n)
        for half_life in half_lives_days
    ]
    youngest, oldest = _group_min_max(items, ages, n)
    age_sum = np.bincount(items, weights=ages, minlength=n)
    recent = np.bincount(items, weights=(ages <= trend_days).astype(np.float64), minlength=n)
    has_events = count > 0
    safe_count = np.maximum(count, 1.0)
    return ItemAggregates(
        log_count=np.log1p(count),
        log_users=np.log1p(users),
        log_popularity_7d=np.log1p(decayed[0]),
        log_popularity_30d=np.log1p(decayed[1]),
        days_since_first=oldest,
        days_since_last=youngest,
        mean_age_days=np.where(has_events, age_sum / safe_count, np.nan),
        trend_7d=recent / safe_count,
    )


def item_time_of_day(dataset: InteractionDataset) -> np.ndarray:
    """(n_items, DAY_PARTS) float64: each item's share of events per UTC time-of-day
    bucket, the hours its audience uses it (zeros for items without events)."""
    counts = np.zeros((dataset.n_items, DAY_PARTS))
    np.add.at(counts, (np.asarray(dataset.item_index, np.int64), day_part(dataset.timestamp)), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def time_of_day_match(
    person_parts: np.ndarray, item_parts: np.ndarray, rows: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """How well each pair's hours agree: Σ over buckets of the person's share × the item's.

    Args:
        person_parts: (n_rows, DAY_PARTS) shares per person (``History.day_parts``).
        item_parts: (n_items, DAY_PARTS) shares per item (:func:`item_time_of_day`).
        rows, items: the pairs.

    Returns:
        (n_pairs,) float64 in [0, 1]; 0 when either side has no events.
    """
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    return np.einsum("ij,ij->i", person_parts[rows], item_parts[items])


def mainstreamness(matrix: sp.spmatrix, item_popularity: np.ndarray) -> np.ndarray:
    """Mean ``item_popularity`` over each row's items (stored entries > 0), 0 for empty rows.

    Args:
        matrix: (n_rows, n_items) histories; only which entries are positive matters.
        item_popularity: (n_items,) popularity per item, e.g. ``ItemAggregates.log_count``.

    Returns:
        (n_rows,) float64.
    """
    present = sp.csr_matrix(matrix > 0, dtype=np.float64)
    sizes = np.asarray(present.sum(axis=1)).ravel()
    totals = present @ np.asarray(item_popularity, dtype=np.float64)
    return np.divide(totals, sizes, out=np.zeros_like(totals), where=sizes > 0)


def user_aggregates(
    dataset: InteractionDataset, item_popularity: np.ndarray | None = None
) -> UserAggregates:
    """Activity, recency, mainstreamness and daily rhythm of every person.

    Args:
        dataset: the events; ages are measured from ``dataset.reference_time``.
        item_popularity: per-item popularity for ``mainstreamness``; default the items'
            ``log_count`` in this dataset.
    """
    n = dataset.n_users
    users = np.asarray(dataset.user_index, dtype=np.int64)
    count = np.bincount(users, minlength=n).astype(np.float64)
    distinct = np.diff(dataset.matrix.indptr).astype(np.float64)
    youngest, _ = _group_min_max(users, _event_ages_days(dataset), n)
    if item_popularity is None:
        item_popularity = np.log1p(np.bincount(dataset.item_index, minlength=dataset.n_items))
    per_part = np.zeros((n, DAY_PARTS))
    np.add.at(per_part, (users, day_part(dataset.timestamp)), 1.0)
    time_of_day = np.divide(
        per_part, count[:, None], out=np.zeros_like(per_part), where=count[:, None] > 0
    )
    return UserAggregates(
        log_count=np.log1p(count),
        log_items=np.log1p(distinct),
        days_since_last=youngest,
        mainstreamness=mainstreamness(dataset.matrix, item_popularity),
        time_of_day=time_of_day,
    )


def _labels(value: object) -> list[str]:
    """One catalog cell as a list of category labels (a plain string is one label)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Iterable):
        return [str(label) for label in value if label is not None and str(label)]
    return []  # None, NaN


def category_matrix(
    item_features: pd.DataFrame | None, n_items: int, column: str = "categories"
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items × categories incidence matrix from the catalog.

    Args:
        item_features: catalog rows aligned with the item index (``dataset.item_features``);
            cells of ``column`` are lists of labels, a single label, or empty.
        n_items: number of items (rows of the result).
        column: the catalog column holding the labels.

    Returns:
        ((n_items, n_categories) float32 CSR of 0/1, sorted category labels); no columns
        when there is no catalog or no labels.
    """
    empty = sp.csr_matrix((n_items, 0), dtype=np.float32), np.array([], dtype=str)
    if item_features is None or column not in item_features.columns:
        return empty
    if len(item_features) != n_items:
        raise ValueError(f"{len(item_features)} catalog rows for {n_items} items")
    exploded = pd.Series([_labels(v) for v in item_features[column].tolist()]).explode()
    exploded = exploded.dropna()
    if exploded.empty:
        return empty
    codes, labels = pd.factorize(exploded.astype(str), sort=True)
    incidence = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (exploded.index.to_numpy(), codes)),
        shape=(n_items, len(labels)),
    )
    incidence.data[:] = 1.0  # a label listed twice still counts once
    return incidence, np.asarray(labels, dtype=str)


def category_affinity(
    history: sp.spmatrix,
    categories: sp.csr_matrix,
    rows: np.ndarray,
    items: np.ndarray,
) -> np.ndarray:
    """How much of a person's history shares each candidate item's categories.

    For a pair (row r, item i) with categories C(i): the mean over c in C(i) of the
    share of row r's history weight on items labelled c. So 1 means every item in the
    history carries every category of the candidate, 0 none (or no categories known).

    Args:
        history: (n_rows, n_items) non-negative history weights; pass 0/1 entries for
            shares by count, recency-weighted ones to favour recent taste.
        categories: (n_items, n_categories) 0/1 incidence from :func:`category_matrix`.
        rows, items: the pairs, aligned arrays of row positions and item indices.

    Returns:
        (n_pairs,) float64 in [0, 1].
    """
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if categories.shape[1] == 0 or len(rows) == 0:
        return np.zeros(len(rows))
    history = sp.csr_matrix(history, dtype=np.float64)
    totals = np.asarray(history.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    shares = sp.csr_matrix(sp.diags(scale) @ history @ categories)  # rows × categories
    overlap = np.asarray(shares[rows].multiply(categories[items]).sum(axis=1)).ravel()
    n_labels = np.asarray(categories.sum(axis=1)).ravel()[items]
    return np.divide(overlap, n_labels, out=np.zeros_like(overlap), where=n_labels > 0)
