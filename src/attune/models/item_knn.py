"""Item-based k-nearest neighbours (cosine similarity with shrinkage).

Fit keeps, for every item, its ``neighbors`` most similar items. A user's scores are
the similarity-weighted sum over the items in their history, so recommendations follow
what the person did seconds ago without retraining.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import InteractionDataset
from attune.models.base import (
    ModelConfig,
    Recommender,
    sparse_from_arrays,
    sparse_to_arrays,
    top_n,
)

BLOCK_CELLS = 32_000_000  # dense similarity cells computed at once (~128 MB of float32)


class ItemKNNConfig(ModelConfig):
    neighbors: int = Field(default=100, ge=1, le=2_000, description="Neighbours kept per item.")
    shrinkage: float = Field(
        default=10.0, ge=0, description="Added to the cosine denominator; damps rare pairs."
    )
    weighting: Literal["none", "binary", "log", "bm25"] = Field(
        default="none", description="How interaction weights enter the item vectors."
    )
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "neighbors": trial.suggest_int("neighbors", 10, 1_000, log=True),
            "shrinkage": trial.suggest_float("shrinkage", 0.0, 100.0),
            "weighting": trial.suggest_categorical("weighting", ["none", "log", "bm25"]),
        }


class ItemKNNRecommender(Recommender):
    """See the module docstring. State: a sparse items × items similarity matrix."""

    name = "item_knn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ItemKNNConfig | dict | None = None) -> None:
        super().__init__(config)
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, dataset: InteractionDataset) -> Self:
        vectors = self._weighted(dataset.matrix).T.tocsr().astype(np.float32)  # items × users
        n_items = vectors.shape[0]
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        users_by_items = vectors.T.tocsr()
        k = min(self.config.neighbors, max(n_items - 1, 0))
        rows, cols, vals = [], [], []
        block = max(1, BLOCK_CELLS // max(n_items, 1))
        for start in range(0, n_items, block):
            stop = min(start + block, n_items)
            dots = (vectors[start:stop] @ users_by_items).toarray()
            denominator = norms[start:stop, None] * norms[None, :] + self.config.shrinkage
            with np.errstate(divide="ignore", invalid="ignore"):
                sims = np.where(denominator > 0, dots / denominator, 0.0).astype(np.float32)
            sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
            if k == 0:
                continue
            best, best_scores = top_n(np.where(sims > 0, sims, -np.inf), k)
            keep = best >= 0
            rows.append((np.arange(start, stop)[:, None] + np.zeros_like(best))[keep])
            cols.append(best[keep])
            vals.append(best_scores[keep])
        if rows:
            self.similarity = sp.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n_items, n_items),
                dtype=np.float32,
            )
        else:
            self.similarity = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        self.item_ids = dataset.item_ids
        return self

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        matrix = matrix.copy().astype(np.float32)
        if self.config.weighting == "binary":
            matrix.data[:] = 1.0
        elif self.config.weighting == "log":
            matrix.data = np.log1p(matrix.data)
        elif self.config.weighting == "bm25":
            matrix = bm25_weight(matrix, self.config.bm25_k1, self.config.bm25_b)
        return matrix

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray((history.astype(np.float32) @ self.similarity).todense())

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.similarity[item_index].toarray()
        rows[rows <= 0] = -np.inf
        return top_n(rows, n)

    def _arrays(self) -> dict[str, np.ndarray]:
        return sparse_to_arrays(self.similarity)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity = sparse_from_arrays(arrays)


def bm25_weight(matrix: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """Okapi BM25 weighting of a users × items matrix (users as documents)."""
    coo = matrix.tocoo()
    n_users = matrix.shape[0]
    # the "+1" form of BM25's idf never goes negative, even for an item everyone had
    df = np.bincount(coo.col, minlength=matrix.shape[1])
    idf = np.log1p((n_users - df + 0.5) / (df + 0.5))
    lengths = np.asarray(matrix.sum(axis=1)).ravel()
    ratio = lengths / max(lengths.mean(), 1e-9)
    length_norm = (1.0 - b) + b * ratio
    data = coo.data * (k1 + 1.0) / (k1 * length_norm[coo.row] + coo.data) * idf[coo.col]
    return sp.csr_matrix((data.astype(np.float32), (coo.row, coo.col)), shape=matrix.shape)
