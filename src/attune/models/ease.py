"""EASE: an embarrassingly shallow autoencoder (Steck, 2019), solved in closed form.

The item × item weight matrix ``B`` minimises ``||X - XB||² + λ||B||²`` with a zero
diagonal: ``P = (XᵀX + λI)⁻¹``, ``B = -P / diag(P)``. Scoring a person is one sparse
row times ``B``, so live history counts at once. Memory grows with the square of the
item count, so only the ``max_items`` most popular items are modelled; the others are
never scored (the fallback covers them).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.features.interactions import InteractionDataset
from attune.models.base import ModelConfig, Recommender


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


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via Cholesky (LAPACK potrf/potri),
    about twice as fast as a general inverse; the input is overwritten."""
    from scipy.linalg import lapack

    potrf, potri = (
        (lapack.spotrf, lapack.spotri)
        if matrix.dtype == np.float32
        else (lapack.dpotrf, lapack.dpotri)
    )
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

    def fit(self, dataset: InteractionDataset) -> Self:
        matrix = dataset.matrix.astype(np.float64)
        if self.config.binarize:
            matrix = matrix.copy()
            matrix.data[:] = 1.0
        counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
        if dataset.n_items > self.config.max_items:
            modelled = np.sort(np.argsort(-counts, kind="stable")[: self.config.max_items])
        else:
            modelled = np.arange(dataset.n_items)
        sub = matrix[:, modelled]
        # single precision halves memory and time on large catalogs; small ones can
        # afford double
        dtype = np.float64 if len(modelled) <= 3_000 else np.float32
        gram = (sub.T @ sub).toarray().astype(dtype)
        gram[np.diag_indices_from(gram)] += self.config.l2
        precision = _spd_inverse(gram)
        weights = precision / (-np.diag(precision))
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        self.modelled = modelled.astype(np.int64)
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

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "modelled": self.modelled}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"].astype(np.float32)
        self.modelled = arrays["modelled"].astype(np.int64)
