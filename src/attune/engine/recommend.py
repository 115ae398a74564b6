"""Answer "what should this person see": live history → model scores → filtered top n."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

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

    def _model(self) -> LoadedModel:
        model = self.models.current()
        if model is None:
            raise NotReadyError("no trained model yet: run `attune train`")
        return model

    def unavailable_items(self) -> frozenset[str]:
        """Catalog items marked unavailable, re-read every few seconds."""
        if time.monotonic() - self._unavailable_at >= UNAVAILABLE_REFRESH_SECONDS:
            with self._lock:
                self._unavailable = frozenset(self.stores.catalog.unavailable_item_ids())
                self._unavailable_at = time.monotonic()
        return self._unavailable

    def for_user(self, user_id: str, n: int) -> Recommendation:
        """The top ``n`` items for ``user_id``, never one they already interacted with.

        History is read from the event store on every call, so events accepted a moment
        ago are both excluded and used as the seed of the list. People the main model
        cannot score (no known history) get the popularity fallback.
        """
        history = self.stores.events.user_history(user_id, limit=HISTORY_LIMIT)
        return self._recommend([history], n)[0]

    def for_users(self, user_ids: list[str], n: int, chunk: int = 256) -> list[Recommendation]:
        """:meth:`for_user` for many people, reading and scoring them in chunks."""
        out: list[Recommendation] = []
        for start in range(0, len(user_ids), chunk):
            part = user_ids[start : start + chunk]
            histories = self.stores.events.user_histories(part, limit=HISTORY_LIMIT)
            out += self._recommend([histories.get(u, []) for u in part], n)
        return out

    def _recommend(self, histories: list[list[HistoryEvent]], n: int) -> list[Recommendation]:
        model = self._model()
        unavailable = self.unavailable_items()
        query = history_matrix(histories, model.item_position, model.main.n_items, model.policy)
        blocked_per_user = [
            {e.item_id for e in h if e.type not in NOT_CONSUMED} | unavailable for h in histories
        ]
        has_history = query.row_sizes() > 0
        main_lists: list[list[ScoredItem]] = [[] for _ in histories]
        if has_history.any():
            rows = np.flatnonzero(has_history)
            exclude = _mask(blocked_per_user, rows, model.item_position, model.main.n_items)
            index, scores = model.main.recommend(query[rows], n, exclude=exclude)
            for r, row in enumerate(rows):
                main_lists[row] = _scored(
                    model.main.item_ids, index[r], scores[r], "model", blocked_per_user[row], n
                )
        answers = []
        for items, blocked in zip(main_lists, blocked_per_user, strict=True):
            if len(items) < n:
                taken = blocked | {it.item_id for it in items}
                items = items + _top(model, "fallback", None, n - len(items), taken)
            answers.append(_answer(model, items))
        return answers

    def similar(self, item_id: str, n: int) -> Recommendation:
        """Items most similar to ``item_id``; popular items fill what similarity cannot."""
        model = self._model()
        position = model.item_position.get(item_id)
        if position is None and self.stores.catalog.get_item(item_id) is None:
            raise NotFoundError(f"item {item_id!r} is not in the catalog or the model")
        blocked = {item_id} | self.unavailable_items()
        items: list[ScoredItem] = []
        if position is not None:
            index, scores = model.similar.similar_items(np.array([position]), n + len(blocked))
            items = _scored(model.similar.item_ids, index[0], scores[0], "model", blocked, n)
        if len(items) < n:
            taken = blocked | {it.item_id for it in items}
            items += _top(model, "fallback", None, n - len(items), taken)
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
    query: sp.csr_matrix | None,
    n: int,
    blocked: set[str] | frozenset[str],
) -> list[ScoredItem]:
    recommender = model.main if which == "main" else model.fallback
    position = model.item_position if which == "main" else model.fallback_position
    if query is None:
        query = sp.csr_matrix((1, recommender.n_items), dtype=np.float32)
    blocked_index = model.indices(set(blocked), position)
    exclude = sp.csr_matrix(
        (
            np.ones(len(blocked_index), dtype=np.float32),
            (np.zeros(len(blocked_index)), blocked_index),
        ),
        shape=(1, recommender.n_items),
    )
    index, scores = recommender.recommend(query, n, exclude=exclude)
    source = "model" if which == "main" else "popular"
    return _scored(recommender.item_ids, index[0], scores[0], source, blocked, n)


def _scored(
    item_ids: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    source: str,
    blocked: set[str] | frozenset[str],
    n: int,
) -> list[ScoredItem]:
    out: list[ScoredItem] = []
    # a model score of zero means "no evidence" (e.g. no neighbour in the history):
    # such slots are left for the popularity fallback rather than filled arbitrarily
    floor = 0.0 if source == "model" else -np.inf
    for i, score in zip(index.tolist(), scores.tolist(), strict=True):
        if i < 0 or not np.isfinite(score) or score <= floor:
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
