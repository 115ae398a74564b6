"""Time-decayed popularity: the same list for everyone, newest interest counting most."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import SECONDS_PER_DAY, InteractionDataset
from attune.models.base import ModelConfig, Recommender


class PopularityConfig(ModelConfig):
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


class PopularityRecommender(Recommender):
    """Scores each item by its (decayed) number of interested users."""

    name = "popularity"
    config_class = PopularityConfig
    config: PopularityConfig

    def __init__(self, config: PopularityConfig | dict | None = None) -> None:
        super().__init__(config)
        self.item_scores = np.zeros(0, dtype=np.float32)

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
        return self

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (history.shape[0], self.n_items))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores = arrays["item_scores"].astype(np.float32)


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
