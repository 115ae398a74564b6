"""What a model is told when a person is erased, and helpers the models share to forget them.

:class:`ErasedPerson` holds one person's training interactions in a model's item space,
weighted exactly as training weighted them (event-type weights and value modes, no time
decay), with their times, order and contexts, because some models need more than the
summed row: popularity and trending decay each event by its age, transitions follow the
order, the hybrid's context profiles count events per context.

Models forget by *rebinding* their state to new arrays, never by writing into the
arrays they hold, so :meth:`~attune.models.base.Recommender.forgotten` can forget on a
shallow copy while requests keep scoring with the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from attune.features.aggregates import ItemAggregates
from attune.features.interactions import (
    SECONDS_PER_DAY,
    InteractionDataset,
    WeightPolicy,
    day_part,
)
from attune.store.protocols import HistoryEvent

CANCELLED = 1e-5
"""A total that falls below this share of its old value after subtracting someone's
part is cancellation error (float32 state), and is set to exactly zero."""


@dataclass(frozen=True)
class ErasedPerson:
    """One person's training interactions over one model's items.

    Attributes:
        user_id: external id; models that keep training user ids look the person up by it.
        item_index: (n_events,) int64 item index of every event training kept, oldest
            first; events with equal times keep the order they were given in (arrival
            order, as the event store returns them and as datasets hold them).
        weight: (n_events,) float64 training weight of each event (no time decay).
        timestamp: (n_events,) float64 UTC Unix seconds.
        n_items: the model's item count (width of :attr:`row`).
        context: (n_events,) object array of each event's stored context dict (or None);
            None when their contexts are unknown. Context profiles subtract it.
    """

    user_id: str
    item_index: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray
    n_items: int
    context: np.ndarray | None = None

    def __post_init__(self) -> None:
        order = np.argsort(np.asarray(self.timestamp, dtype=np.float64), kind="stable")
        object.__setattr__(self, "item_index", np.asarray(self.item_index, np.int64)[order])
        object.__setattr__(self, "weight", np.asarray(self.weight, np.float64)[order])
        object.__setattr__(self, "timestamp", np.asarray(self.timestamp, np.float64)[order])
        if self.context is not None:
            object.__setattr__(self, "context", np.asarray(self.context, dtype=object)[order])

    @property
    def empty(self) -> bool:
        return len(self.item_index) == 0

    @cached_property
    def row(self) -> sp.csr_matrix:
        """(1, n_items) float32: their row of the training matrix (weights summed per item)."""
        matrix = sp.csr_matrix(
            (
                self.weight.astype(np.float32),
                (np.zeros(len(self.item_index), dtype=np.int64), self.item_index),
            ),
            shape=(1, self.n_items),
        )
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix

    @property
    def items(self) -> np.ndarray:
        """Distinct item indices they interacted with, ascending."""
        return np.asarray(self.row.indices, dtype=np.int64)

    def newest_per_item(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct items ascending, the time of their newest event with each)."""
        newest = np.full(self.n_items, -np.inf)
        np.maximum.at(newest, self.item_index, self.timestamp)
        return self.items, newest[self.items]

    @classmethod
    def from_dataset(cls, dataset: InteractionDataset, user_id: str) -> ErasedPerson:
        """The person's events exactly as ``dataset`` holds them (empty if absent)."""
        user = dataset.user_position.get(user_id, -1)
        mine = np.asarray(dataset.user_index) == user
        return cls(
            user_id,
            np.asarray(dataset.item_index)[mine],
            np.asarray(dataset.weight)[mine],
            np.asarray(dataset.timestamp)[mine],
            dataset.n_items,
            None if dataset.event_context is None else dataset.event_context[mine],
        )

    @classmethod
    def from_history(
        cls,
        user_id: str,
        history: Sequence[HistoryEvent],
        item_position: Mapping[str, int],
        n_items: int,
        policy: WeightPolicy,
    ) -> ErasedPerson:
        """Build the person's training events from their stored history.

        Args:
            history: their events (any order), with their contexts where read.
            item_position: the model's external item id → item index.
            policy: the weighting training used; its ``half_life_days`` is ignored, as
                training builds its matrix without time decay.
        """
        undecayed = WeightPolicy(policy.type_weights, policy.value_modes)
        items = np.array([item_position.get(e.item_id, -1) for e in history], dtype=np.int64)
        types = np.array([e.type for e in history], dtype=object)
        values = np.array([np.nan if e.value is None else e.value for e in history])
        times = np.array([e.timestamp for e in history], dtype=np.float64)
        contexts = np.empty(len(history), dtype=object)
        contexts[:] = [e.context for e in history]
        weights = undecayed.weights(types, values, np.zeros(len(history)))
        keep = (items >= 0) & (weights > 0)
        return cls(user_id, items[keep], weights[keep], times[keep], n_items, contexts[keep])


def subtract_totals(totals: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``totals - part`` as float64, with cancelled totals (and negatives) set to zero."""
    old = np.asarray(totals, dtype=np.float64)
    new = old - part
    new[(new <= CANCELLED * np.abs(old)) | (new < 0)] = 0.0
    return new


def decay(times: np.ndarray, reference_time: float, half_life_days: float | None) -> np.ndarray:
    """2^(-age/half-life) of events at ``times``, ages in days before ``reference_time``
    (all ones without a half-life), as the decayed models compute it when fitting."""
    if not half_life_days:
        return np.ones(len(times))
    ages = (reference_time - np.asarray(times, dtype=np.float64)) / SECONDS_PER_DAY
    return np.asarray(np.exp2(-np.maximum(ages, 0.0) / half_life_days))


def decayed_newest(
    person: ErasedPerson, reference_time: float, half_life_days: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(items, decay of their newest event with each item): what each item's people-count
    holds of them when every person counts once, at their newest event."""
    items, newest = person.newest_per_item()
    return items, decay(newest, reference_time, half_life_days)


def decayed_sums(
    person: ErasedPerson, reference_time: float, half_life_days: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(items, Σ weight × decay of their events with each item): their share of summed
    decayed weights."""
    weighted = person.weight * decay(person.timestamp, reference_time, half_life_days)
    totals = np.bincount(person.item_index, weights=weighted, minlength=person.n_items)
    return person.items, totals[person.items]


def moves_reference(person: ErasedPerson, reference_time: float) -> bool:
    """Whether their events may include the newest one, which sets "now" for decay.

    Without them a refit would measure every age from an earlier time, which no
    subtraction can reproduce.
    """
    return bool(len(person.timestamp)) and float(person.timestamp.max()) >= reference_time


def find_row(matrix: sp.csr_matrix, row: sp.csr_matrix, rtol: float = 1e-5) -> int | None:
    """Index of a row of ``matrix`` equal to ``row`` (same items, values within ``rtol``).

    Models that keep training rows without user ids find a person's row this way; two
    people with identical rows are interchangeable, so either one may be returned.

    Args:
        matrix: (n_rows, n_items) CSR with sorted indices.
        row: (1, n_items) CSR with sorted indices and at least one entry.
    """
    if row.nnz == 0 or matrix.shape[0] == 0:
        return None
    first = row.indices[0]
    holders = np.searchsorted(matrix.indptr, np.flatnonzero(matrix.indices == first), "right") - 1
    sizes = np.diff(matrix.indptr)
    for candidate in holders[sizes[holders] == row.nnz].tolist():
        start, stop = matrix.indptr[candidate], matrix.indptr[candidate + 1]
        if np.array_equal(matrix.indices[start:stop], row.indices) and np.allclose(
            matrix.data[start:stop], row.data, rtol=rtol, atol=0.0
        ):
            return int(candidate)
    return None


def drop_row(matrix: sp.csr_matrix, index: int) -> sp.csr_matrix:
    """A new CSR without row ``index`` (the input is left untouched)."""
    keep = np.ones(matrix.shape[0], dtype=bool)
    keep[index] = False
    return sp.csr_matrix(matrix[keep])


def downdate_item_aggregates(
    aggregates: ItemAggregates,
    person: ErasedPerson,
    reference_time: float,
    half_lives_days: tuple[float, float] = (7.0, 30.0),
    trend_days: float = 7.0,
) -> ItemAggregates:
    """:func:`~attune.features.aggregates.item_aggregates` without the person's events.

    Counts, decayed popularities, mean age and trend are exact; an item's first and
    last event times stay as they were unless no event is left (then NaN), since the
    runner-up time is not kept.
    """
    n = len(aggregates.log_count)
    ages = np.maximum(reference_time - person.timestamp, 0.0) / SECONDS_PER_DAY
    items = person.item_index

    def per_item(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(items, weights=weights, minlength=n).astype(np.float64)

    old_count = np.rint(np.expm1(aggregates.log_count))
    count = np.maximum(old_count - per_item(), 0.0)
    users = np.maximum(np.rint(np.expm1(aggregates.log_users)) - (per_item() > 0), 0.0)
    decayed = [
        subtract_totals(np.expm1(log_value), per_item(np.exp2(-ages / half_life)))
        for log_value, half_life in zip(
            (aggregates.log_popularity_7d, aggregates.log_popularity_30d),
            half_lives_days,
            strict=True,
        )
    ]
    has_events = count > 0
    safe_count = np.maximum(count, 1.0)
    age_sum = np.nan_to_num(aggregates.mean_age_days) * old_count - per_item(ages)
    recent = aggregates.trend_7d * np.maximum(old_count, 1.0) - per_item(ages <= trend_days)
    return replace(
        aggregates,
        log_count=np.log1p(count),
        log_users=np.log1p(users),
        log_popularity_7d=np.log1p(decayed[0]),
        log_popularity_30d=np.log1p(decayed[1]),
        days_since_first=np.where(has_events, aggregates.days_since_first, np.nan),
        days_since_last=np.where(has_events, aggregates.days_since_last, np.nan),
        mean_age_days=np.where(has_events, np.maximum(age_sum, 0.0) / safe_count, np.nan),
        trend_7d=np.where(has_events, np.maximum(np.rint(recent), 0.0) / safe_count, 0.0),
    )


def downdate_time_of_day(
    shares: np.ndarray, counts: np.ndarray, person: ErasedPerson
) -> np.ndarray:
    """:func:`~attune.features.aggregates.item_time_of_day` without the person's events.

    Args:
        shares: (n_items, DAY_PARTS) each item's share of events per time-of-day bucket.
        counts: (n_items,) each item's event count those shares were taken of.
    """
    held = np.rint(shares * np.asarray(counts, dtype=np.float64)[:, None])
    theirs = np.zeros_like(held)
    np.add.at(theirs, (person.item_index, day_part(person.timestamp)), 1.0)
    left = np.maximum(held - theirs, 0.0)
    totals = left.sum(axis=1, keepdims=True)
    return np.divide(left, totals, out=np.zeros_like(left), where=totals > 0)
