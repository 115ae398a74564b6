"""The one contract every recommender implements.

A recommender is fitted on an :class:`~attune.features.interactions.InteractionDataset`
and then scores *queries*: one row per user, holding the user's (live) history as a
sparse row over the model's items, and the user's training index (``-1`` when the
model never saw the user). Models that learn per-user state (matrix factorisation) use
the index; models that work from history alone (item-kNN, EASE) use the row. So a user
who acted a moment ago is scored on what they just did.

Everything indexes items by internal position; ``item_ids`` maps back to external ids.
Artifacts are a JSON file and an ``.npz`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from attune.errors import NotSupportedError, ValidationError
from attune.features.interactions import History, InteractionDataset
from attune.models.forgetting import ErasedPerson

ARTIFACT_FORMAT = 1


class ModelConfig(BaseModel):
    """Base of every model's typed hyper-parameters (bounds and docs live on the fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recency_half_life_events: float | None = Field(
        default=None,
        gt=0,
        description="When scoring a person, the weight of a history item halves for every "
        "this many newer events they have had since; None treats all history alike.",
    )

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Parameters to try for one Optuna ``trial`` (none by default: only the defaults)."""
        return {}


class Recommender(ABC):
    """Fit on interactions; recommend, rank and find similar items by internal index.

    Subclasses set ``name`` and ``config_class`` and implement :meth:`fit`,
    :meth:`score`, :meth:`_arrays` and :meth:`_restore`. Optional abilities
    (:meth:`similar_items`) raise :class:`NotSupportedError` naming the class;
    :meth:`forget` (erasure) returns False where the model cannot forget a person.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None) -> None:
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            try:
                config = self.config_class.model_validate(config)
            except Exception as exc:
                raise ValidationError(f"invalid parameters for {self.name}: {exc}") from exc
        self.config = config
        self.item_ids: np.ndarray = np.array([], dtype=str)

    # -- the contract -------------------------------------------------------------------

    @abstractmethod
    def fit(self, dataset: InteractionDataset) -> Self:
        """Learn from the dataset; keep its ``item_ids`` as this model's item space."""

    @abstractmethod
    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        """Scores of every item for each query row: float32 array (n_queries, n_items).

        Args:
            history: (n_queries, n_items) weighted history of each user.
            user_index: (n_queries,) training index of each user, ``-1`` if unseen.
        """

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most similar items to each given item: (indices, scores), -1 padded."""
        raise NotSupportedError(f"{type(self).__name__} does not find similar items")

    def forget(self, person: ErasedPerson) -> bool:
        """Remove an erased person's influence from this fitted model, in place.

        Implementations rebind their state to new arrays and never write into the arrays
        they hold (see :meth:`forgotten`). They remove what they can even when they
        cannot be exact.

        Args:
            person: their training interactions in this model's item space.

        Returns:
            True when the model now equals (within float error) one refitted without
            the person; False when only a refit can make it so. The default, for models
            that cannot forget, changes nothing and returns False.
        """
        return False

    def holds(self, person: ErasedPerson) -> bool | None:
        """Whether the training data held exactly these events of the person.

        :meth:`forget` subtracts what the person gave, so it must only be applied to a
        model trained on them. Models that keep training rows or user ids can check:
        False means "not there, or not these events" (only a refit is safe). The
        default, None, means the model cannot tell.
        """
        return None

    def forgotten(self, person: ErasedPerson) -> tuple[Self, bool]:
        """A copy that has forgotten ``person`` and whether it is exact (:meth:`forget`).

        The copy is shallow and :meth:`forget` only rebinds attributes, so this model
        (and whoever is scoring with it) is left untouched.
        """
        twin = copy.copy(self)
        return twin, twin.forget(person)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def query(self, history: History | sp.csr_matrix) -> sp.csr_matrix:
        """The weighted history rows this model scores (its own recency preference applied)."""
        if isinstance(history, History):
            return history.weighted(self.config.recency_half_life_events)
        return sp.csr_matrix(history)

    def recommend(
        self,
        history: History | sp.csr_matrix,
        n: int,
        *,
        user_index: np.ndarray | None = None,
        exclude: sp.csr_matrix | None = None,
        candidates: np.ndarray | None = None,
        exclude_history: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` items per query row, best first.

        Args:
            history: (n_queries, n_items) histories; a plain sparse matrix counts as
                already weighted.
            n: list length.
            user_index: training index per row (``-1`` unknown); default all unknown.
            exclude: extra (n_queries, n_items) sparse mask of items never to return.
            candidates: restrict every list to these item indices.
            exclude_history: leave out items present in ``history``.

        Returns:
            (indices, scores), both (n_queries, n); slots that cannot be filled hold
            index -1 and score -inf.
        """
        n_queries = history.shape[0]
        if user_index is None:
            user_index = np.full(n_queries, -1, dtype=np.int64)
        rows = self.query(history)
        scores = np.asarray(self.score(rows, user_index), dtype=np.float32).copy()
        masks = [exclude] if exclude is not None else []
        if exclude_history:
            masks.append(rows.weights if isinstance(rows, History) else rows)
        for mask in masks:
            coo = mask.tocoo()
            scores[coo.row, coo.col] = -np.inf
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[candidates[(candidates >= 0) & (candidates < self.n_items)]] = True
            scores[:, ~allowed] = -np.inf
        return top_n(scores, n)

    # -- persistence (no pickle) ----------------------------------------------------------

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """Numeric state to save (item ids are saved by the base class)."""

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild state from what :meth:`_arrays` returned."""

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": ARTIFACT_FORMAT,
            "algorithm": self.name,
            "config": self.config.model_dump(mode="json"),
        }
        (path / "model.json").write_text(json.dumps(meta, indent=2))
        arrays = {f"state_{k}": v for k, v in self._arrays().items()}
        np.savez(path / "arrays.npz", item_ids=self.item_ids.astype(str), **arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = json.loads((path / "model.json").read_text())
        if meta.get("algorithm") != cls.name:
            raise ValidationError(
                f"{path} holds a {meta.get('algorithm')!r} model, not {cls.name!r}"
            )
        model = cls(meta["config"])
        with np.load(path / "arrays.npz", allow_pickle=False) as data:
            model.item_ids = data["item_ids"]
            model._restore({k[6:]: data[k] for k in data.files if k.startswith("state_")})
        return model


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest finite scores per row, best first."""
    n_rows, n_cols = scores.shape
    k = min(n, n_cols)
    out_index = np.full((n_rows, n), -1, dtype=np.int64)
    out_score = np.full((n_rows, n), -np.inf, dtype=np.float32)
    if k == 0:
        return out_index, out_score
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_cols), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # sort by score desc, then by index asc for a stable, reproducible order
    order = np.lexsort((part, -part_scores), axis=1)
    chosen = np.take_along_axis(part, order, axis=1)
    chosen_scores = np.take_along_axis(part_scores, order, axis=1)
    finite = np.isfinite(chosen_scores)
    out_index[:, :k] = np.where(finite, chosen, -1)
    out_score[:, :k] = np.where(finite, chosen_scores, -np.inf)
    return out_index, out_score


def sparse_to_arrays(matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for :meth:`Recommender._arrays` (no pickle needed)."""
    return {
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "shape": np.array(matrix.shape),
    }


def sparse_from_arrays(arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """The inverse of :func:`sparse_to_arrays`."""
    return sp.csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"])
    )


def first_similar_items(
    components: list[Recommender], item_index: np.ndarray, n: int, owner: str
) -> tuple[np.ndarray, np.ndarray]:
    """Similar items from the first component model that can find them (composite models)."""
    for model in components:
        try:
            return model.similar_items(item_index, n)
        except NotSupportedError:
            continue
    raise NotSupportedError(f"no component of this {owner} finds similar items")
