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

from attune.features.interactions import InteractionDataset, arrival_order
from attune.models.base import (
    ModelConfig,
    Recommender,
    sparse_from_arrays,
    sparse_to_arrays,
)
from attune.models.forgetting import CANCELLED, ErasedPerson


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
        # each item's link total before smoothing: what forgetting renormalises with
        # (None: a model saved before it was kept)
        self.row_counts: np.ndarray | None = None

    def fit(self, dataset: InteractionDataset) -> Self:
        counts = self._link_counts(
            dataset.user_index, dataset.item_index, dataset.timestamp, dataset.n_items
        )
        self._set_counts(counts)
        self.item_ids = dataset.item_ids
        return self

    def _link_counts(
        self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, n: int
    ) -> sp.csr_matrix:
        """(n, n) float32 link weights of the events' time-ordered sequences, no diagonal."""
        order = arrival_order(np.asarray(users), np.asarray(timestamps))
        users, items = np.asarray(users)[order], np.asarray(items)[order]
        sources, targets, values = [], [], []
        for distance in range(1, self.config.window + 1):
            same_user = users[distance:] == users[:-distance]
            if not same_user.any():
                break
            sources.append(items[:-distance][same_user])
            targets.append(items[distance:][same_user])
            weight = 1.0 / distance**self.config.distance_decay
            values.append(np.full(int(same_user.sum()), weight, dtype=np.float32))
        if not sources:
            return sp.csr_matrix((n, n), dtype=np.float32)
        counts = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(sources), np.concatenate(targets))),
            shape=(n, n),
            dtype=np.float32,
        )
        counts.setdiag(0)
        counts.eliminate_zeros()
        return counts

    def _set_counts(self, counts: sp.csr_matrix) -> None:
        """Normalise link weights into the transition matrix (rows with smoothing)."""
        row_counts = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
        totals = row_counts + self.config.smoothing
        self.transitions = sp.csr_matrix(
            sp.diags(1.0 / np.maximum(totals, 1e-12)) @ counts, dtype=np.float32
        )
        self.row_counts = row_counts

    def forget(self, person: ErasedPerson) -> bool:
        """Subtract the person's links and renormalise the rows they touched (exact); every
        other row stays as it is."""
        if person.empty:
            return True
        if self.row_counts is None:
            return False
        n = self.n_items
        theirs = self._link_counts(
            np.zeros(len(person.item_index), dtype=np.int64),
            person.item_index,
            person.timestamp,
            n,
        )
        rows = np.unique(theirs.nonzero()[0])
        if not len(rows):
            return True
        smoothing = self.config.smoothing
        before = sp.csr_matrix(
            sp.diags(self.row_counts[rows] + smoothing) @ self.transitions[rows], dtype=np.float64
        )
        after = sp.csr_matrix(before - theirs[rows]).tocoo()
        was = np.asarray(before[after.row, after.col]).ravel()
        kept = after.data > CANCELLED * was  # the rest is cancellation error: no link left
        row_counts = self.row_counts.copy()
        row_counts[rows] = np.bincount(
            after.row[kept], weights=after.data[kept], minlength=len(rows)
        )
        scale = 1.0 / np.maximum(row_counts[rows] + smoothing, 1e-12)
        replaced = sp.csr_matrix(
            (
                after.data[kept] * scale[after.row[kept]],
                (rows[after.row[kept]], after.col[kept]),
            ),
            shape=(n, n),
        )
        untouched = np.ones(n, dtype=np.float32)
        untouched[rows] = 0.0
        transitions = sp.diags(untouched) @ self.transitions + replaced
        transitions.eliminate_zeros()
        self.transitions = sp.csr_matrix(transitions, dtype=np.float32)
        self.row_counts = row_counts
        return True

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray((history.astype(np.float32) @ self.transitions).todense())

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = sparse_to_arrays(self.transitions)
        if self.row_counts is not None:
            arrays["row_counts"] = self.row_counts
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.transitions = sparse_from_arrays(arrays)
        self.row_counts = arrays.get("row_counts")
