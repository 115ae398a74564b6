"""EASE: an embarrassingly shallow autoencoder (Steck, 2019), solved in closed form.

The item × item weight matrix ``B`` minimises ``||X - XB||² + λ||B||²`` with a zero
diagonal: ``P = (XᵀX + λI)⁻¹``, ``B = -P / diag(P)``. Scoring a person is one sparse
row times ``B``, so live history counts at once. Memory grows with the square of the
item count, so only the ``max_items`` most popular items are modelled, and never items
nobody had (catalog-only items cost the most and score nothing); the others are never
scored (the fallback covers them).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import InteractionDataset
from attune.models.base import ModelConfig, Recommender
from attune.models.forgetting import ErasedPerson

DOUBLE_PRECISION_ITEMS = 3_000
"""Up to this many modelled items B is solved (and downdated) in float64."""
DOWNDATE_ROWS = 2_048
"""Rows of the inverse updated at once when forgetting (bounds the temporary memory)."""


class EASEConfig(ModelConfig):
    l2: float = Field(default=500.0, gt=0, description="λ: the ridge penalty on B.")
    binarize: bool = Field(
        default=True, description="Fit on 0/1 interactions rather than on event weights."
    )
    max_items: int = Field(
        default=15_000,
        ge=2,
        le=40_000,
        description="Model only this many most popular items (memory ~ 12 × max_items² bytes).",
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", 10.0, 5_000.0, log=True)}


def modelled_items(counts: np.ndarray, max_items: int) -> np.ndarray:
    """The items B covers, ascending: those anyone had (a catalog-only item's row and
    column of B would be zero), at most the ``max_items`` most popular of them."""
    had = np.flatnonzero(counts > 0)
    if len(had) > max_items:
        had = had[np.argsort(-counts[had], kind="stable")[:max_items]]
    return np.sort(had)


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via Cholesky (LAPACK potrf/potri),
    about twice as fast as a general inverse; the input is overwritten."""
    from scipy.linalg import lapack

    potrf, potri = (
        (lapack.spotrf, lapack.spotri)
        if matrix.dtype == np.float32
        else (lapack.dpotrf, lapack.dpotri)
    )
    if matrix.size == 0:
        return matrix.copy()
    factor, info = potrf(matrix, lower=False, overwrite_a=True)
    if info != 0:  # not positive definite (cannot happen with l2 > 0, but fail loudly)
        return np.linalg.inv(matrix)
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed with info={info}")
    upper = np.triu(inverse)
    return upper + np.triu(upper, 1).T


class EASERecommender(Recommender):
    """See the module docstring. State: the dense modelled-items × modelled-items ``B``."""

    name = "ease"
    config_class = EASEConfig
    config: EASEConfig

    def __init__(self, config: EASEConfig | dict | None = None) -> None:
        super().__init__(config)
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.modelled = np.zeros(0, dtype=np.int64)  # item index of each row/column of B
        # what forgetting needs (None: a model saved before they were kept): the diagonal
        # of P = (XᵀX + λI)⁻¹, which with B gives back all of P, and each item's people
        self.precision_diagonal: np.ndarray | None = None
        self.item_counts: np.ndarray | None = None

    def fit(self, dataset: InteractionDataset) -> Self:
        matrix = dataset.matrix.astype(np.float64)
        if self.config.binarize:
            matrix = matrix.copy()
            matrix.data[:] = 1.0
        counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
        modelled = modelled_items(counts, self.config.max_items)
        sub = matrix[:, modelled]
        # single precision halves memory and time on large catalogs; small ones can
        # afford double
        dtype = np.float64 if len(modelled) <= DOUBLE_PRECISION_ITEMS else np.float32
        gram = (sub.T @ sub).toarray().astype(dtype)
        gram[np.diag_indices_from(gram)] += self.config.l2
        precision = _spd_inverse(gram)
        self.precision_diagonal = np.diag(precision).astype(np.float64)
        weights = precision / (-np.diag(precision))
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        self.modelled = modelled.astype(np.int64)
        self.item_counts = counts.astype(np.int64)
        self.item_ids = dataset.item_ids
        return self

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        scores = np.zeros((history.shape[0], self.n_items), dtype=np.float32)
        sub = history[:, self.modelled].astype(np.float32)
        scores[:, self.modelled] = np.asarray(sub @ self.weights)
        return scores

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        from attune.models.base import top_n

        position = np.full(self.n_items, -1, dtype=np.int64)
        position[self.modelled] = np.arange(len(self.modelled))
        scores = np.full((len(item_index), self.n_items), -np.inf, dtype=np.float32)
        for row, item in enumerate(item_index.tolist()):
            if position[item] >= 0:
                column = self.weights[position[item]]
                scores[row, self.modelled] = np.where(column > 0, column, -np.inf)
        return top_n(scores, n)

    def forget(self, person: ErasedPerson) -> bool:
        """Remove the person's row from the Gram matrix: a rank-one (Sherman-Morrison)
        downdate of P, rebuilt from B and its kept diagonal (no inverse is stored).

        ``(G - xxᵀ + λI)⁻¹ = P + (Px)(Px)ᵀ / (1 - xᵀPx)`` for their row ``x``, then
        ``B = -P / diag(P)`` as in :meth:`fit`; O(n²) time, one n² temporary. Exact
        unless their absence changes which items are the ``max_items`` most popular.
        """
        if person.empty:
            return True
        if self.precision_diagonal is None or self.item_counts is None:
            return False
        row = person.row.astype(np.float64)
        if self.config.binarize:
            row.data[:] = 1.0
        counts = self.item_counts.copy()
        counts[row.indices] -= 1
        # an item nobody has any more keeps a zero row and column: the same as unmodelled
        still_had = self.modelled[counts[self.modelled] > 0]
        same_items = np.array_equal(modelled_items(counts, self.config.max_items), still_had)
        position = np.full(self.n_items, -1, dtype=np.int64)
        position[self.modelled] = np.arange(len(self.modelled))
        inside = position[row.indices] >= 0
        if inside.any():
            self._downdate(position[row.indices[inside]], row.data[inside])
        self.item_counts = counts
        return bool(same_items)

    def _downdate(self, columns: np.ndarray, values: np.ndarray) -> None:
        """Rebind ``weights`` and ``precision_diagonal`` to the Gram matrix less the row
        holding ``values`` at modelled positions ``columns``."""
        assert self.precision_diagonal is not None
        n = len(self.modelled)
        dtype = np.float64 if n <= DOUBLE_PRECISION_ITEMS else np.float32
        diagonal = self.precision_diagonal
        precision = np.empty((n, n), dtype=dtype)
        for start in range(0, n, DOWNDATE_ROWS):  # P_ij = -B_ij P_jj, P_ii kept
            block = slice(start, min(start + DOWNDATE_ROWS, n))
            np.multiply(self.weights[block], -diagonal, out=precision[block], casting="unsafe")
        precision[np.diag_indices(n)] = diagonal
        direction = precision[:, columns].astype(np.float64) @ values  # P x
        scale = 1.0 / (1.0 - values @ direction[columns])
        for start in range(0, n, DOWNDATE_ROWS):
            block = slice(start, min(start + DOWNDATE_ROWS, n))
            precision[block] += (scale * direction[block, None] * direction[None, :]).astype(dtype)
        diagonal = np.diag(precision).astype(np.float64)
        for start in range(0, n, DOWNDATE_ROWS):
            block = slice(start, min(start + DOWNDATE_ROWS, n))
            precision[block] /= -diagonal.astype(dtype)
        precision[np.diag_indices(n)] = 0.0
        self.weights = precision.astype(np.float32, copy=False)
        self.precision_diagonal = diagonal

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"weights": self.weights, "modelled": self.modelled}
        if self.precision_diagonal is not None and self.item_counts is not None:
            arrays["precision_diagonal"] = self.precision_diagonal
            arrays["item_counts"] = self.item_counts
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"].astype(np.float32)
        self.modelled = arrays["modelled"].astype(np.int64)
        self.precision_diagonal = arrays.get("precision_diagonal")
        self.item_counts = arrays.get("item_counts")
