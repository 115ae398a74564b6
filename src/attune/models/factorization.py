"""The matrix-factorisation family: a score is the dot product of a user and an item vector.

:class:`MatrixFactorizationBase` is the middle layer shared by ALS, BPR and any later
embedding model (as implicit's ``MatrixFactorizationBase``): subclasses only train and
say how to place a user the model never saw (:meth:`MatrixFactorizationBase._fold_in`).
This layer stores the factors, scores known users by their stored row, folds in unknown
users from their live history, finds similar items and saves and loads.

Personal data: ``user_factors`` holds one row per training user and ``user_ids`` their
external ids, both saved in the artifact. :meth:`MatrixFactorizationBase.forget` drops an
erased person's row at once, but every item factor was learnt alongside theirs, so only a
refit is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from attune.errors import ValidationError
from attune.models.base import ModelConfig, Recommender, top_n
from attune.models.forgetting import ErasedPerson


class MatrixFactorizationBase(Recommender):
    """Scores users by ``user_vector @ item_factors.T``.

    Attributes:
        user_factors: (n_users, k) float32; row ``u`` belongs to ``user_ids[u]``.
        item_factors: (n_items, k) float32; row ``i`` belongs to ``item_ids[i]``.
        user_ids: external ids of the training users; position = training user index.
    """

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.user_factors = np.zeros((0, 0), dtype=np.float32)
        self.item_factors = np.zeros((0, 0), dtype=np.float32)
        self.user_ids: np.ndarray = np.array([], dtype=str)
        # people per item in the training data (None: a model saved before it was kept)
        self.item_user_counts: np.ndarray | None = None
        self._user_position: dict[str, int] | None = None
        self._projection: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def fold_in_regularization(self) -> float:
        """Ridge term of the default least-squares fold-in; subclasses tie it to their config."""
        return 0.01

    # -- id spaces ------------------------------------------------------------------------

    @property
    def user_position(self) -> dict[str, int]:
        """External user id → training user index (row of ``user_factors``)."""
        if self._user_position is None:
            self._user_position = {user: u for u, user in enumerate(self.user_ids.tolist())}
        return self._user_position

    def user_index_of(self, user_ids: Sequence[str]) -> np.ndarray:
        """Training user index of each external id, ``-1`` for users the model never saw.

        The result is the ``user_index`` argument of :meth:`score` and :meth:`recommend`.
        """
        position = self.user_position
        return np.array([position.get(str(u), -1) for u in user_ids], dtype=np.int64)

    def _set_state(
        self,
        user_ids: np.ndarray,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
    ) -> None:
        """Install freshly trained or loaded factors and drop everything derived from them."""
        self.user_ids = np.asarray(user_ids, dtype=str)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self._user_position = None
        self._projection = None

    # -- scoring ---------------------------------------------------------------------------

    def user_vectors(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        """One factor vector per query: (n_queries, k) float32.

        Known users (``user_index >= 0``) get their stored row; unknown users with some
        history are folded in from it; unknown users with no history get zeros.

        Args:
            history: (n_queries, n_items) weighted history rows.
            user_index: (n_queries,) training user index, ``-1`` if unseen.
        """
        n_queries = history.shape[0]
        user_index = checked_user_index(self, history, user_index, self.n_users)
        vectors = np.zeros((n_queries, self.n_factors), dtype=np.float32)
        known = user_index >= 0
        vectors[known] = self.user_factors[user_index[known]]
        history = sp.csr_matrix(history, dtype=np.float32)
        fold = ~known & (np.diff(history.indptr) > 0)
        if fold.any():
            vectors[fold] = self._fold_in(history[fold])
        return vectors

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return self.user_vectors(history, user_index) @ self.item_factors.T

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Factor vectors of unseen users from their (non-empty) history rows.

        Default: the ridge least-squares projection that best reproduces the history row,
        ``history @ Y @ inv(Y.T @ Y + reg * I)`` with ``Y = item_factors``.

        Args:
            history: (n_rows, n_items) float32 CSR, every row non-empty.

        Returns:
            (n_rows, k) float32 user vectors.
        """
        if self._projection is None:
            factors = self.item_factors.astype(np.float64)
            gram = factors.T @ factors + self.fold_in_regularization * np.eye(self.n_factors)
            # Y @ inv(gram), via a solve (gram is symmetric) rather than an explicit inverse
            self._projection = np.linalg.solve(gram, factors.T).T.astype(np.float32)
        return np.asarray(history @ self._projection, dtype=np.float32)

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Items nearest by cosine over ``item_factors``, never the item itself."""
        item_index = np.asarray(item_index, dtype=np.int64).reshape(-1)
        if np.any((item_index < 0) | (item_index >= self.n_items)):
            raise ValidationError(f"item index outside 0..{self.n_items - 1}")
        norms = np.linalg.norm(self.item_factors, axis=1)
        unit = self.item_factors / np.where(norms > 0, norms, 1.0)[:, None]
        similarity = unit[item_index] @ unit.T
        similarity[np.arange(len(item_index)), item_index] = -np.inf
        return top_n(similarity, n)

    # -- forgetting ------------------------------------------------------------------------

    def holds(self, person: ErasedPerson) -> bool | None:
        return person.user_id in self.user_position

    def forget(self, person: ErasedPerson) -> bool:
        """Drop the person's factors; items nobody else had get :meth:`_orphan_factors`.

        Item factors that others share are left for the refit: recomputing them needs
        every remaining person's interactions with those items, which the model does not
        keep. So this is never exact for a training user (True only when the person was
        not one).
        """
        row = self.user_position.get(person.user_id)
        if row is None:
            return True
        keep = np.ones(self.n_users, dtype=bool)
        keep[row] = False
        item_factors, counts = self.item_factors, self.item_user_counts
        if counts is not None:
            counts = counts.copy()
            counts[person.items] = np.maximum(counts[person.items] - 1, 0)
            orphans = person.items[counts[person.items] == 0]
            if len(orphans):
                item_factors = item_factors.copy()
                item_factors[orphans] = self._orphan_factors()
        self._set_state(self.user_ids[keep], self.user_factors[keep], item_factors)
        self.item_user_counts = counts
        return False

    def _orphan_factors(self) -> np.ndarray:
        """The factor vector of an item no training user had: zeros, which is what a
        least-squares item step gives an item without positives."""
        return np.zeros(self.n_factors, dtype=np.float32)

    # -- persistence -----------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "user_ids": self.user_ids.astype(str),
        }
        if self.item_user_counts is not None:
            arrays["item_user_counts"] = self.item_user_counts
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_state(arrays["user_ids"], arrays["user_factors"], arrays["item_factors"])
        self.item_user_counts = arrays.get("item_user_counts")


def checked_user_index(
    model: Recommender, history: sp.spmatrix, user_index: np.ndarray, n_users: int
) -> np.ndarray:
    """``user_index`` as int64 after checking a query against the model's id spaces.

    Raises:
        ValidationError: the history's columns are not the model's items, or an index is
            neither ``-1`` nor a training user.
    """
    n_queries = history.shape[0]
    if history.shape[1] != model.n_items:
        raise ValidationError(
            f"{type(model).__name__}: history has {history.shape[1]} item columns, "
            f"the model has {model.n_items} items"
        )
    user_index = np.asarray(user_index, dtype=np.int64).reshape(-1)
    if len(user_index) != n_queries:
        raise ValidationError(f"{n_queries} history rows but {len(user_index)} user indices")
    if np.any(user_index >= n_users) or np.any(user_index < -1):
        raise ValidationError(f"user index outside 0..{n_users - 1} (or -1)")
    return user_index
