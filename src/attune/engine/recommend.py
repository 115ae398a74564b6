"""Answer "what should this person see": live history → model scores → filtered top n.

A filter expression (see :mod:`attune.engine.expressions`) restricts both the model's
candidates and the popularity fallback, so a filtered list is still ``n`` long whenever
enough matching items exist.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from attune.engine.expressions import Filter
from attune.engine.filtering import AllowedItems, CatalogFilters
from attune.engine.model_holder import LoadedModel, ModelHolder
from attune.errors import NotFoundError, NotReadyError
from attune.features.interactions import history_matrix
from attune.store.factory import Stores
from attune.store.protocols import HistoryEvent

HISTORY_LIMIT = 1_000
"""Newest events read per request; older history rarely changes a list."""

NOT_CONSUMED = frozenset({"impression", "search"})
"""Event types that do not mean the person has had the item (so it may still be shown)."""

UNAVAILABLE_REFRESH_SECONDS = 5.0


@dataclass
class ScoredItem:
    item_id: str
    score: float
    source: str  # which model produced the score: "model" or "popular"


@dataclass
class Recommendation:
    recommendation_id: str
    items: list[ScoredItem]
    model_version: str
    sources: dict[str, int] = field(default_factory=dict)


class RecommendationService:
    """Personalised lists, similar items and the popularity fallback chain."""

    def __init__(self, stores: Stores, models: ModelHolder) -> None:
        self.stores = stores
        self.models = models
        self._unavailable: frozenset[str] = frozenset()
        self._unavailable_at = float("-inf")
        self._lock = threading.Lock()
        self.filters = CatalogFilters(stores.catalog, UNAVAILABLE_REFRESH_SECONDS)

    def _model(self) -> LoadedModel:
        model = self.models.current()
        if model is None:
            raise NotReadyError("no trained model yet: run `attune train`")
        return model

    def unavailable_items(self) -> frozenset[str]:
        """Catalog items marked unavailable, re-read every few seconds."""
        if time.monotonic() - self._unavailable_at >= UNAVAILABLE_REFRESH_SECONDS:
            with self._lock:
                # another thread may have re-read it while this one waited for the lock
                if time.monotonic() - self._unavailable_at >= UNAVAILABLE_REFRESH_SECONDS:
                    self._unavailable = frozenset(self.stores.catalog.unavailable_item_ids())
                    self._unavailable_at = time.monotonic()
        return self._unavailable

    def for_user(self, user_id: str, n: int, filter_text: str | None = None) -> Recommendation:
        """The top ``n`` items for ``user_id``, never one they already interacted with.

        History is read from the event store on every call, so events accepted a moment
        ago are both excluded and used as the seed of the list. People the main model
        cannot score (no known history) get the popularity fallback.

        Args:
            user_id: external user id.
            n: list length.
            filter_text: a filter expression every item must match (None: no filter).

        Raises:
            ValidationError: the filter is malformed (checked before anything else).
        """
        condition = self.filters.parse(filter_text) if filter_text is not None else None
        history = self.stores.events.user_history(user_id, limit=HISTORY_LIMIT)
        return self._recommend([history], n, condition)[0]

    def for_users(
        self, user_ids: list[str], n: int, chunk: int = 256, filter_text: str | None = None
    ) -> list[Recommendation]:
        """:meth:`for_user` for many people, reading and scoring them in chunks."""
        condition = self.filters.parse(filter_text) if filter_text is not None else None
        out: list[Recommendation] = []
        for start in range(0, len(user_ids), chunk):
            part = user_ids[start : start + chunk]
            histories = self.stores.events.user_histories(part, limit=HISTORY_LIMIT)
            out += self._recommend([histories.get(u, []) for u in part], n, condition)
        return out

    def _allowed(
        self, condition: Filter | None, model: LoadedModel, role: str
    ) -> AllowedItems | None:
        """The items of one of ``model``'s item spaces that ``condition`` lets through."""
        if condition is None:
            return None
        recommender = {"main": model.main, "fallback": model.fallback, "similar": model.similar}
        space = f"{model.version.version_id}/{role}"
        return self.filters.allowed(condition, recommender[role].item_ids, space)

    def _recommend(
        self, histories: list[list[HistoryEvent]], n: int, condition: Filter | None = None
    ) -> list[Recommendation]:
        model = self._model()
        main_allowed = self._allowed(condition, model, "main")
        fallback_allowed = self._allowed(condition, model, "fallback")
        unavailable = self.unavailable_items()
        query = history_matrix(histories, model.item_position, model.main.n_items, model.policy)
        blocked_per_user = [
            {e.item_id for e in h if e.type not in NOT_CONSUMED} | unavailable for h in histories
        ]
        has_history = query.row_sizes() > 0
        main_lists: list[list[ScoredItem]] = [[] for _ in histories]
        if has_history.any() and (main_allowed is None or len(main_allowed.index)):
            rows = np.flatnonzero(has_history)
            exclude = _mask(blocked_per_user, rows, model.item_position, model.main.n_items)
            candidates = None if main_allowed is None else main_allowed.index
            index, scores = model.main.recommend(
                query[rows], n, exclude=exclude, candidates=candidates
            )
            for r, row in enumerate(rows):
                main_lists[row] = _scored(
                    model.main.item_ids,
                    index[r],
                    scores[r],
                    "model",
                    blocked_per_user[row],
                    n,
                    main_allowed,
                )
        answers = []
        for items, blocked in zip(main_lists, blocked_per_user, strict=True):
            if len(items) < n:
                taken = blocked | {it.item_id for it in items}
                items = items + _top(model, "fallback", n - len(items), taken, fallback_allowed)
            answers.append(_answer(model, items))
        return answers

    def similar(self, item_id: str, n: int, filter_text: str | None = None) -> Recommendation:
        """Items most similar to ``item_id``; popular items fill what similarity cannot.

        Args:
            item_id: external id of the item (in the model or the catalog).
            n: list length.
            filter_text: a filter expression every item must match (None: no filter).
        """
        condition = self.filters.parse(filter_text) if filter_text is not None else None
        model = self._model()
        position = model.item_position.get(item_id)
        if position is None and self.stores.catalog.get_item(item_id) is None:
            raise NotFoundError(f"item {item_id!r} is not in the catalog or the model")
        blocked = {item_id} | self.unavailable_items()
        items: list[ScoredItem] = []
        allowed = self._allowed(condition, model, "similar")
        if position is not None and (allowed is None or len(allowed.index)):
            # enough neighbours that n survive the blocked and the filtered-out ones
            refused = 0 if allowed is None else len(allowed.mask) - len(allowed.index)
            depth = min(n + len(blocked) + refused, model.similar.n_items)
            index, scores = model.similar.similar_items(np.array([position]), depth)
            items = _scored(
                model.similar.item_ids, index[0], scores[0], "model", blocked, n, allowed
            )
        if len(items) < n:
            taken = blocked | {it.item_id for it in items}
            fallback_allowed = self._allowed(condition, model, "fallback")
            items += _top(model, "fallback", n - len(items), taken, fallback_allowed)
        return _answer(model, items)


def _mask(
    blocked: list[set[str]], rows: np.ndarray, position: dict[str, int], n_items: int
) -> sp.csr_matrix:
    """A sparse (len(rows), n_items) mask of each selected user's blocked items."""
    r_idx, c_idx = [], []
    for r, row in enumerate(rows.tolist()):
        cols = [position[i] for i in blocked[row] if i in position]
        r_idx += [r] * len(cols)
        c_idx += cols
    return sp.csr_matrix(
        (np.ones(len(c_idx), dtype=np.float32), (r_idx, c_idx)), shape=(len(rows), n_items)
    )


def _top(
    model: LoadedModel,
    which: str,
    n: int,
    blocked: set[str] | frozenset[str],
    allowed: AllowedItems | None = None,
) -> list[ScoredItem]:
    """The ``n`` best items of the ``which`` model ("main" or "fallback") for an empty
    history, leaving out ``blocked`` and keeping only ``allowed`` (if given)."""
    recommender = model.main if which == "main" else model.fallback
    position = model.item_position if which == "main" else model.fallback_position
    if allowed is not None and not len(allowed.index):
        return []
    query = sp.csr_matrix((1, recommender.n_items), dtype=np.float32)
    blocked_index = model.indices(set(blocked), position)
    exclude = sp.csr_matrix(
        (
            np.ones(len(blocked_index), dtype=np.float32),
            (np.zeros(len(blocked_index)), blocked_index),
        ),
        shape=(1, recommender.n_items),
    )
    candidates = None if allowed is None else allowed.index
    index, scores = recommender.recommend(query, n, exclude=exclude, candidates=candidates)
    source = "model" if which == "main" else "popular"
    return _scored(recommender.item_ids, index[0], scores[0], source, blocked, n, allowed)


def _scored(
    item_ids: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    source: str,
    blocked: set[str] | frozenset[str],
    n: int,
    allowed: AllowedItems | None = None,
) -> list[ScoredItem]:
    """Up to ``n`` scored items from a model's (index, score) row, skipping padding,
    ``blocked`` ids and positions ``allowed`` refuses (a guard: candidates already
    restrict the models that honour them)."""
    out: list[ScoredItem] = []
    # a model score of zero means "no evidence" (e.g. no neighbour in the history):
    # such slots are left for the popularity fallback rather than filled arbitrarily
    floor = 0.0 if source == "model" else -np.inf
    for i, score in zip(index.tolist(), scores.tolist(), strict=True):
        if i < 0 or not np.isfinite(score) or score <= floor:
            continue
        if allowed is not None and not allowed.mask[i]:
            continue
        item_id = str(item_ids[i])
        if item_id in blocked:
            continue
        out.append(ScoredItem(item_id, float(score), source))
        if len(out) == n:
            break
    return out


def _answer(model: LoadedModel, items: list[ScoredItem]) -> Recommendation:
    sources: dict[str, int] = {}
    for item in items:
        sources[item.source] = sources.get(item.source, 0) + 1
    return Recommendation(uuid.uuid4().hex, items, model.version.version_id, sources)
