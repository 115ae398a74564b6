"""Time-decayed popularity: the same list for everyone, newest interest counting most.

With ``segment_by``, also per segment (region, device, ...): see
:mod:`attune.models.segmented`.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import SECONDS_PER_DAY, InteractionDataset
from attune.models.base import Recommender
from attune.models.forgetting import (
    ErasedPerson,
    decayed_newest,
    decayed_sums,
    moves_reference,
    subtract_totals,
)
from attune.models.segmented import SegmentedConfig, SegmentedModel


class PopularityConfig(SegmentedConfig):
    half_life_days: float | None = Field(
        default=30.0,
        gt=0,
        description="An interaction's weight halves every this many days before the newest "
        "event in the data; None counts every interaction fully.",
    )
    count_users_once: bool = Field(
        default=True,
        description="Count distinct people per item rather than summed weights, so one "
        "heavy user cannot make an item popular.",
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        # decay assumes people share one clock: data spanning years of separate
        # histories may want none, a news site a short one
        choices = [None, 7.0, 30.0, 180.0]
        return {"half_life_days": trial.suggest_categorical("half_life_days", choices)}


class PopularityRecommender(SegmentedModel, Recommender):
    """Scores each item by its (decayed) number of interested users, globally and per
    segment (:meth:`scores_for_segment`)."""

    name = "popularity"
    config_class = PopularityConfig
    config: PopularityConfig

    def __init__(self, config: PopularityConfig | dict | None = None) -> None:
        super().__init__(config)
        self.item_scores = np.zeros(0, dtype=np.float32)
        self.reference_time: float | None = None  # "now" of the decay; None: unknown

    def fit(self, dataset: InteractionDataset) -> Self:
        ages = (dataset.reference_time - dataset.timestamp) / SECONDS_PER_DAY
        decay = (
            np.exp2(-np.maximum(ages, 0.0) / self.config.half_life_days)
            if self.config.half_life_days
            else np.ones(len(ages))
        )
        if self.config.count_users_once:
            # the decayed weight of a (user, item) pair is that of its newest event
            newest = max_per_pair(dataset, decay)
            scores = np.asarray(newest.sum(axis=0)).ravel()
        else:
            scores = np.bincount(
                dataset.item_index, weights=dataset.weight * decay, minlength=dataset.n_items
            )
        self.item_ids = dataset.item_ids
        self.item_scores = scores.astype(np.float32)
        self.reference_time = dataset.reference_time
        per_event = decay if self.config.count_users_once else dataset.weight * decay
        per_person = "max" if self.config.count_users_once else "sum"
        self._learn_segments(dataset, {"people": per_event}, per_person)
        return self

    def _segment_scores(self, row: int) -> np.ndarray:
        assert self.segments is not None
        return self.segments.row("people", row)

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (history.shape[0], self.n_items))

    def forget(self, person: ErasedPerson) -> bool:
        """Subtract the person's (decayed) share of every item's score.

        Not exact when their events include the newest one (a refit measures ages from
        an earlier "now"), when the model is old enough not to know its "now", or when it
        has segments (which segments held the person is not known here).
        """
        if person.empty:
            return True
        if self.reference_time is None:
            return False
        share = decayed_newest if self.config.count_users_once else decayed_sums
        items, part = share(person, self.reference_time, self.config.half_life_days)
        scores = self.item_scores.astype(np.float64)
        scores[items] = subtract_totals(scores[items], part)
        self.item_scores = scores.astype(np.float32)
        return self.segments is None and not moves_reference(person, self.reference_time)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"item_scores": self.item_scores, **self._segment_arrays()}
        if self.reference_time is not None:
            arrays["reference_time"] = np.array([self.reference_time])
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores = arrays["item_scores"].astype(np.float32)
        if "reference_time" in arrays:
            self.reference_time = float(arrays["reference_time"][0])
        self._restore_segments(arrays)


def max_per_pair(dataset: InteractionDataset, value: np.ndarray) -> sp.csr_matrix:
    """users × items holding, per pair, the largest ``value`` among that pair's events."""
    order = np.lexsort((-value, dataset.item_index, dataset.user_index))
    users, items = dataset.user_index[order], dataset.item_index[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return sp.csr_matrix(
        (value[order][first], (users[first], items[first])),
        shape=(dataset.n_users, dataset.n_items),
    )
