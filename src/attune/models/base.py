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
SPARSE_SHARE = 0.05
"""Rank a model's sparse scores directly when they fill less than this share of the
(queries × items) matrix; denser ones are ranked as dense rows."""


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

    @classmethod
    def as_trial(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (this config's fields) under the names :meth:`search_space` suggests,
        so a known configuration can be queued as a trial (the same names unless a
        search space suggests a derived quantity)."""
        return values


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
        positive_only: bool = False,
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
            positive_only: the caller keeps only positive scores: a row may come back
                shorter than ``n`` rather than be filled with items scoring 0 or less
                (a neighbourhood model then never ranks its whole catalog).

        Returns:
            (indices, scores), both (n_queries, n); slots that cannot be filled hold
            index -1 and score -inf.
        """
        n_queries = history.shape[0]
        if user_index is None:
            user_index = np.full(n_queries, -1, dtype=np.int64)
        rows = self.query(history)
        masks = [exclude] if exclude is not None else []
        if exclude_history:
            masks.append(rows.weights if isinstance(rows, History) else rows)
        if n_queries == 1 and isinstance(rows, sp.csr_matrix):
            found = self.row_scores(rows.indices, rows.data, int(user_index[0]))
            if found is not None:
                ranked = row_top_n(*found, n, self.n_items, masks, candidates, positive_only)
                if ranked is not None:
                    return ranked
        sparse = self.sparse_scores(rows, user_index)
        if sparse is not None and sparse.nnz < SPARSE_SHARE * n_queries * self.n_items:
            index, scores, short = sparse_top_n(sparse, n, masks, candidates, positive_only)
            if len(short):  # too few positive scores there: rank those rows densely
                index[short], scores[short] = self._dense_top_n(
                    rows[short], user_index[short], n, [m[short] for m in masks], candidates
                )
            return index, scores
        return self._dense_top_n(rows, user_index, n, masks, candidates)

    def sparse_scores(self, history: Any, user_index: np.ndarray) -> sp.csr_matrix | None:
        """:meth:`score` as a sparse matrix, for models that score only a few items per
        row (neighbourhood models); an item absent from a row scores exactly 0. None,
        the default, means this model's scores are dense.

        :meth:`recommend` then ranks only the stored scores (a person with a handful of
        history items touches a few thousand of a large catalog's items, not all of
        them) and gives the same lists as ranking :meth:`score`'s dense rows."""
        return None

    def row_scores(
        self, items: np.ndarray, weights: np.ndarray, user_index: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`sparse_scores` of one query row given as its history's item positions
        and weights: (item positions, scores), each position once, others scoring 0.

        For one person (a live request) plain arrays beat building sparse matrices,
        whose per-object checks cost more than the arithmetic. None (the default):
        :meth:`recommend` uses the matrix path."""
        return None

    def _dense_top_n(
        self,
        rows: Any,
        user_index: np.ndarray,
        n: int,
        masks: list[sp.csr_matrix],
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(self.score(rows, user_index), dtype=np.float32).copy()
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
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValidationError(f"{path}: unknown artifact format {meta.get('format')!r}")
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
        part_scores = np.take_along_axis(scores, part, axis=1)
        _lowest_tied(scores, part, part_scores)
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


def _lowest_tied(scores: np.ndarray, part: np.ndarray, part_scores: np.ndarray) -> None:
    """Where more items tie at a row's cut than fit, keep the lowest-indexed of them (the
    partition picks any), so equal scores always rank by index. In place."""
    cut = part_scores.min(axis=1)
    tied_total = (scores == cut[:, None]).sum(axis=1)
    tied_kept = (part_scores == cut[:, None]).sum(axis=1)
    k = part.shape[1]
    for r in np.flatnonzero((tied_total > tied_kept) & np.isfinite(cut)):
        above = np.flatnonzero(scores[r] > cut[r])
        tied = np.flatnonzero(scores[r] == cut[r])[: k - len(above)]
        part[r] = np.concatenate((above, tied))
        part_scores[r] = scores[r, part[r]]


def row_top_n(
    items: np.ndarray,
    scores: np.ndarray,
    n: int,
    n_items: int,
    masks: list[sp.csr_matrix],
    candidates: np.ndarray | None,
    partial: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`sparse_top_n` for one row given as arrays (``items`` unique); None when
    fewer than ``n`` positive scores remain (the dense order would go on with zeros),
    unless ``partial``: then the row is padded with -1 / -inf."""
    keep = scores > 0
    # a lookup over the item range: cheaper than np.isin for one row (its setup alone
    # costs more than marking a few thousand positions in a scratch mask)
    refused = None
    for mask in masks:
        if mask.indptr[1] > mask.indptr[0]:
            if refused is None:
                refused = np.zeros(n_items, dtype=bool)
            refused[mask.indices[mask.indptr[0] : mask.indptr[1]]] = True
    if refused is not None:
        keep &= ~refused[items]
    if candidates is not None:
        allowed = np.zeros(n_items, dtype=bool)
        allowed[candidates] = True
        keep &= allowed[items]
    items, scores = items[keep], scores[keep].astype(np.float32)
    if len(items) < min(n, n_items) and not partial:
        return None
    order = np.lexsort((items, -scores))[:n]  # score desc, then position asc
    out_index = np.full((1, n), -1, dtype=np.int64)
    out_score = np.full((1, n), -np.inf, dtype=np.float32)
    out_index[0, : len(order)], out_score[0, : len(order)] = items[order], scores[order]
    return out_index, out_score


def sparse_top_n(
    scores: sp.csr_matrix,
    n: int,
    masks: list[sp.csr_matrix],
    candidates: np.ndarray | None,
    partial: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`top_n` over sparse scores (absent = 0), after ``masks`` (items never to
    return) and ``candidates`` (the only items allowed).

    Returns (indices, scores, short): ``short`` lists the rows with fewer than ``n``
    positive scores left, where the dense order would go on with zero-scored items;
    their slots are -1 / -inf and the caller ranks them densely. With ``partial`` those
    rows keep their positive scores (padded) and ``short`` is empty.
    """
    n_rows, n_cols = scores.shape
    coo = scores.tocoo()
    row, col, value = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    keep = value > 0
    if candidates is not None:
        allowed = np.zeros(n_cols, dtype=bool)
        allowed[candidates[(candidates >= 0) & (candidates < n_cols)]] = True
        keep &= allowed[col]
    key = row * n_cols + col
    for mask in masks:
        masked = mask.tocoo()
        keep &= ~np.isin(key, masked.row.astype(np.int64) * n_cols + masked.col)
    row, col, value = row[keep], col[keep], value[keep].astype(np.float32)
    order = np.lexsort((col, -value, row))  # by row, score desc, then index asc
    row, col, value = row[order], col[order], value[order]
    counts = np.bincount(row, minlength=n_rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(row)) - starts[row]
    first = rank < n
    out_index = np.full((n_rows, n), -1, dtype=np.int64)
    out_score = np.full((n_rows, n), -np.inf, dtype=np.float32)
    out_index[row[first], rank[first]] = col[first]
    out_score[row[first], rank[first]] = value[first]
    if partial:
        return out_index, out_score, np.zeros(0, dtype=np.int64)
    short = np.flatnonzero(counts < min(n, n_cols))
    out_index[short], out_score[short] = -1, -np.inf
    return out_index, out_score, short


def row_entries(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the stored entries of ``rows`` of a CSR matrix are: (positions into its
    ``indices`` / ``data``, and for each the index into ``rows`` it belongs to), read
    from ``indptr`` without scipy's row indexing (which builds matrices per call)."""
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    if not len(rows) or not lengths.sum():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    spans = zip(starts.tolist(), ends.tolist(), strict=True)
    entry = np.concatenate([np.arange(a, b) for a, b in spans])
    return entry, np.repeat(np.arange(len(rows)), lengths)


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
