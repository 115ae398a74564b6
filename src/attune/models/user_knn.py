"""User-based k-nearest neighbours (cosine similarity with shrinkage).

A query user's history row is compared with every training user's row; the
``neighbors`` most similar training users vote for their items, each vote weighted by
its similarity. It works from history alone, so a user the model never saw is scored
as soon as they have acted once.

Personal data: the fitted state *is* the (weighted) training user × item matrix, kept in
memory and saved in the artifact. The rows carry no user ids, but they are still their
histories: :meth:`UserKNNRecommender.forget` drops an erased person's row at once, and
artifacts saved before the erasure still hold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self

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
from attune.models.factorization import checked_user_index
from attune.models.forgetting import ErasedPerson, drop_row, find_row
from attune.models.item_knn import BLOCK_CELLS, bm25_weight

if TYPE_CHECKING:
    import optuna


class UserKNNConfig(ModelConfig):
    neighbors: int = Field(
        default=50, ge=1, le=5_000, description="Most similar training users that vote."
    )
    shrinkage: float = Field(
        default=10.0, ge=0, description="Added to the cosine denominator; damps thin overlaps."
    )
    weighting: Literal["none", "binary", "log", "bm25"] = Field(
        default="none",
        description="How interaction weights enter the training users' rows. With bm25 the "
        "training rows are the BM25-weighted documents and the query history is used as it "
        "is, as a search query is.",
    )
    bm25_k1: float = Field(default=1.2, gt=0, description="BM25 term-frequency saturation.")
    bm25_b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation.")

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Hyper-parameters for one Optuna trial, as a dict this config accepts."""
        return {
            "neighbors": trial.suggest_int("neighbors", 5, 500, log=True),
            "shrinkage": trial.suggest_float("shrinkage", 0.0, 100.0),
            "weighting": trial.suggest_categorical("weighting", ["none", "log", "bm25"]),
        }


class UserKNNRecommender(Recommender):
    """See the module docstring. State: the weighted training users × items matrix."""

    name = "user_knn"
    config_class = UserKNNConfig
    config: UserKNNConfig

    def __init__(self, config: UserKNNConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self._items_by_users = sp.csr_matrix((0, 0), dtype=np.float32)
        self._user_norms = np.zeros(0, dtype=np.float32)

    def fit(self, dataset: InteractionDataset) -> Self:
        matrix = sp.csr_matrix(dataset.matrix, dtype=np.float32)
        if self.config.weighting == "bm25":
            matrix = bm25_weight(matrix, self.config.bm25_k1, self.config.bm25_b)
        else:
            matrix = self._elementwise(matrix)
        self.item_ids = dataset.item_ids
        self._set_user_items(matrix)
        return self

    def _set_user_items(self, matrix: sp.csr_matrix) -> None:
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        matrix.eliminate_zeros()
        matrix.sort_indices()
        self.user_items = matrix
        # kept transposed as well: queries multiply against it on every call
        self._items_by_users = matrix.T.tocsr()
        self._user_norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())

    def _elementwise(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """The per-entry part of the weighting (everything but bm25), batch independent."""
        matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if self.config.weighting == "binary":
            matrix.data[:] = 1.0
        elif self.config.weighting == "log":
            matrix.data = np.log1p(matrix.data)
        return matrix

    def neighbor_similarity(self, history: sp.csr_matrix, user_index: np.ndarray) -> sp.csr_matrix:
        """Cosine similarity (with shrinkage) of each query to its nearest training users.

        Args:
            history: (n_queries, n_items) weighted history rows.
            user_index: (n_queries,) training user index, ``-1`` if unseen; a training
                user never counts themself as a neighbour.

        Returns:
            (n_queries, n_training_users) float32 CSR holding, per row, at most
            ``neighbors`` positive similarities.
        """
        n_queries, n_users = history.shape[0], self.user_items.shape[0]
        user_index = checked_user_index(self, history, user_index, n_users)
        query = self._elementwise(history)
        query_norms = np.sqrt(np.asarray(query.multiply(query).sum(axis=1)).ravel())
        k = min(self.config.neighbors, n_users)
        rows, cols, vals = [], [], []
        block = max(1, BLOCK_CELLS // max(n_users, 1))
        for start in range(0, n_queries, block):
            stop = min(start + block, n_queries)
            dots = (query[start:stop] @ self._items_by_users).toarray()
            denominator = query_norms[start:stop, None] * self._user_norms[None, :]
            denominator += self.config.shrinkage
            with np.errstate(divide="ignore", invalid="ignore"):
                sims = np.where(denominator > 0, dots / denominator, 0.0).astype(np.float32)
            own = user_index[start:stop]
            sims[np.flatnonzero(own >= 0), own[own >= 0]] = 0.0
            if k == 0:
                continue
            if k < n_users:
                best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            else:
                best = np.broadcast_to(np.arange(n_users), (stop - start, n_users))
            best_sims = np.take_along_axis(sims, best, axis=1)
            keep = best_sims > 0
            rows.append(np.broadcast_to(np.arange(start, stop)[:, None], best.shape)[keep])
            cols.append(best[keep])
            vals.append(best_sims[keep])
        if not rows:
            return sp.csr_matrix((n_queries, n_users), dtype=np.float32)
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_queries, n_users),
            dtype=np.float32,
        )

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray(self.sparse_scores(history, user_index).todense(), dtype=np.float32)

    def sparse_scores(self, history: sp.csr_matrix, user_index: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self.neighbor_similarity(history, user_index) @ self.user_items)

    def holds(self, person: ErasedPerson) -> bool | None:
        if person.empty or self.config.weighting == "bm25":
            return None
        return find_row(self.user_items, self._own_row(person)) is not None

    def _own_row(self, person: ErasedPerson) -> sp.csr_matrix:
        """The person's row as it is stored here (elementwise weighting applied)."""
        row = sp.csr_matrix(self._elementwise(person.row))
        row.eliminate_zeros()
        return row

    def forget(self, person: ErasedPerson) -> bool:
        """Drop the person's row from the neighbour pool (exact).

        Their row is found by content (rows carry no ids). With bm25 weighting every row
        depends on every person, so only a refit is exact: False, nothing dropped.
        """
        if person.empty:
            return True
        if self.config.weighting == "bm25":
            return False
        found = find_row(self.user_items, self._own_row(person))
        if found is None:
            return False
        self._set_user_items(drop_row(self.user_items, found))
        return True

    def _arrays(self) -> dict[str, np.ndarray]:
        return sparse_to_arrays(self.user_items)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_user_items(sparse_from_arrays(arrays))
