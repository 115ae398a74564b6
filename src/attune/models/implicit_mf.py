"""ALS and BPR matrix factorisation, trained by the ``implicit`` library.

Training is implicit's (``implicit.cpu.als`` / ``implicit.cpu.bpr``); this module only
turns an :class:`~attune.features.interactions.InteractionDataset` into the user × item
CSR matrix implicit expects, keeps the factors in
:class:`~attune.models.factorization.MatrixFactorizationBase`, and says how each model
places a user it never saw. ``implicit`` is imported on first fit or fold-in, never by
``import attune``.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attune.errors import ValidationError
from attune.features.interactions import InteractionDataset
from attune.models.base import ModelConfig
from attune.models.deadline import OutOfTime, implicit_callback
from attune.models.factorization import MatrixFactorizationBase

if TYPE_CHECKING:
    import optuna
    from implicit.cpu.als import AlternatingLeastSquares

FOLD_MAP_RIDGE = 1e-3
"""Ridge of BPR's fold-in map, relative to the mean eigenvalue of its Gram matrix."""
NUM_THREADS_DESCRIPTION = "Training threads handed to implicit; 0 means one per core."
BPR_SHARED_THREADS_FROM = 1_000_000
"""BPR trains on one thread (repeatable) below this many interactions, unless configured."""


class ALSConfig(ModelConfig):
    factors: int = Field(default=64, ge=1, le=1_024, description="Latent dimensions.")
    regularization: float = Field(
        default=10.0,
        ge=0,
        le=1_000,
        description="L2 penalty on user and item factors. Not scaled by the number of "
        "interactions, so larger data usually wants more; 10 was best on MovieLens-100K.",
    )
    alpha: float = Field(
        default=2.0,
        gt=0,
        le=1_000,
        description="Confidence per unit of interaction weight: implicit reads alpha × weight "
        "as a positive's confidence, against 1 for every pair never seen.",
    )
    iterations: int = Field(default=15, ge=1, le=500, description="Alternating sweeps.")
    random_state: int = Field(default=42, ge=0, description="Seed of the initial factors.")
    num_threads: int = Field(default=0, ge=0, le=1_024, description=NUM_THREADS_DESCRIPTION)

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Hyper-parameters for one Optuna trial, as a dict this config accepts."""
        return {
            "factors": trial.suggest_int("factors", 16, 128, log=True),
            "regularization": trial.suggest_float("regularization", 0.01, 100.0, log=True),
            "alpha": trial.suggest_float("alpha", 1.0, 50.0, log=True),
            "iterations": trial.suggest_int("iterations", 5, 30),
        }


class BPRConfig(ModelConfig):
    factors: int = Field(default=64, ge=1, le=1_024, description="Latent dimensions.")
    learning_rate: float = Field(
        default=0.05, gt=0, le=1.0, description="Step size of the SGD updates."
    )
    regularization: float = Field(
        default=0.01, ge=0, le=10.0, description="L2 penalty applied at every SGD update."
    )
    iterations: int = Field(default=100, ge=1, le=2_000, description="Epochs over the data.")
    random_state: int = Field(default=42, ge=0, description="Seed of factors and sampling.")
    num_threads: int | None = Field(
        default=None,
        ge=0,
        le=1_024,
        description=NUM_THREADS_DESCRIPTION + " Threads update the factors without locks, so "
        "only 1 thread gives the same factors for the same random_state. None: 1 thread "
        f"below {BPR_SHARED_THREADS_FROM:,} interactions (where one thread takes seconds, "
        "and the same data gives the same model), one per core from there.",
    )
    fold_in: Literal["mean", "mapped"] = Field(
        default="mean",
        description="How a person is placed from their history: 'mean', the weighted mean "
        "of their items' factors; 'mapped', that mean mapped to where training put people "
        "with such a mean (closer to the learnt rows; better where the learnt rows are, "
        "worse where they overfit). Chosen by validation when tuning.",
    )

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Hyper-parameters for one Optuna trial, as a dict this config accepts."""
        return {
            "factors": trial.suggest_int("factors", 16, 128, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
            "regularization": trial.suggest_float("regularization", 1e-4, 0.1, log=True),
            "iterations": trial.suggest_int("iterations", 20, 200, log=True),
            "fold_in": trial.suggest_categorical("fold_in", ["mean", "mapped"]),
        }


def _people_per_item(user_items: sp.csr_matrix) -> np.ndarray:
    """(n_items,) int64: how many training users had each item."""
    return np.bincount(user_items.indices, minlength=user_items.shape[1]).astype(np.int64)


def _bpr_threads(configured: int | None, interactions: int) -> int:
    """Threads BPR trains on: as configured, else 1 on data small enough for one thread
    to be quick (its lock-free updates make more threads give another model each run)."""
    if configured is not None:
        return configured
    return 1 if interactions < BPR_SHARED_THREADS_FROM else 0


def _training_matrix(dataset: InteractionDataset, model_name: str) -> sp.csr_matrix:
    matrix = sp.csr_matrix(dataset.matrix, dtype=np.float32)
    if matrix.nnz == 0:
        raise ValidationError(f"cannot fit {model_name} on a dataset without interactions")
    return matrix


class ALSRecommender(MatrixFactorizationBase):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via ``implicit``.

    Unknown users are folded in by implicit's own exact user solve
    (``recalculate_user``): the same least-squares step training takes for every user,
    with the same alpha and regularization, so a newcomer and a training user with the
    same history land on (nearly) the same vector.
    """

    name = "als"
    config_class = ALSConfig
    config: ALSConfig

    def __init__(self, config: ALSConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._solver: AlternatingLeastSquares | None = None

    def _new_solver(self) -> AlternatingLeastSquares:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit warns (once) about a threaded BLAS when a model is built
        with threadpool_limits(limits=1, user_api="blas"):
            return AlternatingLeastSquares(
                factors=self.config.factors,
                regularization=self.config.regularization,
                alpha=self.config.alpha,
                dtype=np.float32,
                iterations=self.config.iterations,
                num_threads=self.config.num_threads,
                random_state=self.config.random_state,
            )

    def fit(self, dataset: InteractionDataset) -> Self:
        from threadpoolctl import threadpool_limits

        user_items = _training_matrix(dataset, self.name)
        solver = self._new_solver()
        # implicit runs its own threads; a threaded BLAS underneath makes it many times slower
        with threadpool_limits(limits=1, user_api="blas"), suppress(OutOfTime):
            # at a fit deadline (tuning) the sweeps done so far are kept
            solver.fit(user_items, show_progress=False, callback=implicit_callback())
        self.item_ids = dataset.item_ids
        self._set_state(dataset.user_ids, solver.user_factors, solver.item_factors)
        self.item_user_counts = _people_per_item(user_items)
        self._solver = solver
        return self

    def _set_state(
        self, user_ids: np.ndarray, user_factors: np.ndarray, item_factors: np.ndarray
    ) -> None:
        super()._set_state(user_ids, user_factors, item_factors)
        self._solver = None

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        if self._solver is None:  # loaded from disk: rebuild implicit's model around the items
            solver = self._new_solver()
            solver.item_factors = self.item_factors
            self._solver = solver
        vectors = self._solver.recalculate_user(np.arange(history.shape[0]), history)
        return np.asarray(vectors, dtype=np.float32).reshape(history.shape[0], -1)


class BPRRecommender(MatrixFactorizationBase):
    """Bayesian Personalised Ranking (Rendle et al. 2009) via ``implicit``.

    BPR reads interactions as binary. implicit appends an item-bias column to the item
    factors and a constant 1 to every user vector; both are kept, so ``n_factors`` is
    ``factors + 1``.

    Fold-in: BPR has no closed-form user step (a user vector is the result of sampled
    SGD), so a person is placed from the weighted mean of the factors of the items in
    their history, with the bias slot set to 1 (``fold_in="mean"``). With
    ``fold_in="mapped"`` that mean goes through :attr:`fold_map`, a small
    (n_factors × n_factors) least-squares map, fitted after training, from every training
    user's mean vector to their learnt row: SGD stretches and turns user vectors away
    from the mean of their items. Which is better depends on the data (ML-100K test
    NDCG@10, default parameters: with equal timestamps 0.026 mean, 0.035 mapped, 0.034
    the learnt rows; by time 0.189 mean, 0.154 mapped), so tuning measures both. Models
    saved without a map use the mean.
    """

    name = "bpr"
    config_class = BPRConfig
    config: BPRConfig

    def __init__(self, config: BPRConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.fold_map: np.ndarray | None = None
        """(n_factors, n_factors): mean item vector → user vector; None: the mean itself."""

    def fit(self, dataset: InteractionDataset) -> Self:
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        user_items = _training_matrix(dataset, self.name)
        with threadpool_limits(limits=1, user_api="blas"):
            solver = BayesianPersonalizedRanking(
                factors=self.config.factors,
                learning_rate=self.config.learning_rate,
                regularization=self.config.regularization,
                dtype=np.float32,
                iterations=self.config.iterations,
                num_threads=_bpr_threads(self.config.num_threads, user_items.nnz),
                random_state=self.config.random_state,
            )
            with suppress(OutOfTime):  # at a fit deadline the epochs done so far are kept
                solver.fit(user_items, show_progress=False, callback=implicit_callback())
        self.item_ids = dataset.item_ids
        self._set_state(dataset.user_ids, solver.user_factors, solver.item_factors)
        self.item_user_counts = _people_per_item(user_items)
        self.fold_map = self._fitted_fold_map(user_items)
        return self

    def _mean_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """(n_rows, n_factors) float64: each row's weighted mean of its items' factors."""
        totals = np.asarray(history.sum(axis=1), dtype=np.float64)
        safe_totals = np.where(totals != 0, totals, 1.0)
        return np.asarray(history @ self.item_factors, dtype=np.float64) / safe_totals

    def _fitted_fold_map(self, user_items: sp.csr_matrix) -> np.ndarray | None:
        """The ridge least-squares map from training users' mean vectors to their learnt
        rows (None when there are too few users to fit one)."""
        means = self._mean_vectors(user_items)
        learnt = self.user_factors.astype(np.float64)
        if len(means) <= self.n_factors:
            return None
        gram = means.T @ means
        # a ridge of a thousandth of the mean eigenvalue: harmless, and keeps the solve
        # defined when some factor is constant across users
        ridge = FOLD_MAP_RIDGE * max(float(np.trace(gram)) / self.n_factors, 1e-12)
        mapping = np.linalg.solve(gram + ridge * np.eye(self.n_factors), means.T @ learnt)
        return np.asarray(mapping, dtype=np.float32) if np.isfinite(mapping).all() else None

    def _orphan_factors(self) -> np.ndarray:
        """Zeros, and a bias that puts the item below every other item for every person.

        BPR only ever samples an item nobody has as a negative, so a refit sinks it to the
        bottom of every list. Every user vector (a training row, or a fold-in: a mean of
        item factors) has a dot part no longer than ``reach``, so no other item scores
        below ``min bias - reach × longest item``.
        """
        factors = np.zeros(self.n_factors, dtype=np.float32)
        if self.n_items:
            item_norms = np.linalg.norm(self.item_factors[:, :-1], axis=1)
            user_norms = np.linalg.norm(self.user_factors[:, :-1], axis=1)
            reach = max(item_norms.max(), user_norms.max(initial=0.0))
            factors[-1] = self.item_factors[:, -1].min() - reach * item_norms.max() - 1.0
        return factors

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        vectors = self._mean_vectors(history)
        if self.config.fold_in == "mapped" and self.fold_map is not None:
            vectors = vectors @ self.fold_map.astype(np.float64)
        vectors[:, -1] = 1.0  # the bias slot: every user vector carries a constant 1
        return vectors.astype(np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._arrays()
        if self.fold_map is not None:
            arrays["fold_map"] = self.fold_map
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.fold_map = arrays.get("fold_map")
