"""Item-to-next-item transitions: what people go on to after each item.

A first-order sequential model: for every person's time-ordered history, each item
``i`` links to the items that follow it within ``window`` steps, a link at distance
``d`` counting ``1 / d ** distance_decay``. Rows are normalised with additive smoothing
so a rare item's few followers do not dominate. Scoring multiplies the person's
history, most recent items weighted most, by the transition matrix — so the list
follows what they did last, session by session.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import InteractionDataset
from attune.models.base import (
    ModelConfig,
    Recommender,
    sparse_from_arrays,
    sparse_to_arrays,
)


class TransitionsConfig(ModelConfig):
    window: int = Field(default=10, ge=1, le=200, description="How many next steps link.")
    distance_decay: float = Field(
        default=1.0, ge=0, le=3, description="A link at distance d counts 1 / d**decay."
    )
    smoothing: float = Field(
        default=10.0, ge=0, description="Added to each item's total before normalising."
    )
    recency_half_life_events: float | None = Field(default=3.0, gt=0)

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "window": trial.suggest_int("window", 1, 50, log=True),
            "distance_decay": trial.suggest_float("distance_decay", 0.0, 2.0),
            "smoothing": trial.suggest_float("smoothing", 0.1, 100.0, log=True),
            "recency_half_life_events": trial.suggest_float("recency", 1.0, 30.0, log=True),
        }


class TransitionsRecommender(Recommender):
    """See the module docstring. State: a sparse items × items transition matrix."""

    name = "transitions"
    config_class = TransitionsConfig
    config: TransitionsConfig

    def __init__(self, config: TransitionsConfig | dict | None = None) -> None:
        super().__init__(config)
        self.transitions = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, dataset: InteractionDataset) -> Self:
        order = np.lexsort((dataset.item_index, dataset.timestamp, dataset.user_index))
        users = dataset.user_index[order]
        items = dataset.item_index[order]
        sources, targets, values = [], [], []
        for distance in range(1, self.config.window + 1):
            same_user = users[distance:] == users[:-distance]
            if not same_user.any():
                break
            sources.append(items[:-distance][same_user])
            targets.append(items[distance:][same_user])
            weight = 1.0 / distance**self.config.distance_decay
            values.append(np.full(int(same_user.sum()), weight, dtype=np.float32))
        n = dataset.n_items
        if sources:
            counts = sp.csr_matrix(
                (np.concatenate(values), (np.concatenate(sources), np.concatenate(targets))),
                shape=(n, n),
                dtype=np.float32,
            )
            counts.setdiag(0)
            counts.eliminate_zeros()
        else:
            counts = sp.csr_matrix((n, n), dtype=np.float32)
        totals = np.asarray(counts.sum(axis=1)).ravel() + self.config.smoothing
        self.transitions = sp.csr_matrix(
            sp.diags(1.0 / np.maximum(totals, 1e-12)) @ counts, dtype=np.float32
        )
        self.item_ids = dataset.item_ids
        return self

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray((history.astype(np.float32) @ self.transitions).todense())

    def _arrays(self) -> dict[str, np.ndarray]:
        return sparse_to_arrays(self.transitions)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.transitions = sparse_from_arrays(arrays)
