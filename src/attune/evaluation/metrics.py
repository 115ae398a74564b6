"""Ranking metrics over recommendation lists (binary relevance), averaged over users.

Conventions (PROTOCOL.md): a user in the test set without a list scores zero; items the
user had in train and repeated items count as misses but use up their slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _hits(ranked: Sequence[str], relevant: set[str], k: int, seen: set[str]) -> np.ndarray:
    hits = np.zeros(k, dtype=bool)
    shown: set[str] = set()
    for position, item in enumerate(ranked[:k]):
        if item in relevant and item not in shown and item not in seen:
            hits[position] = True
        shown.add(item)
    return hits


def _ndcg(hits: np.ndarray, n_relevant: int, discount: np.ndarray) -> float:
    """NDCG of one list's hits (binary relevance; ideal DCG over min(k, n_relevant))."""
    return float((hits * discount).sum() / discount[: min(n_relevant, len(discount))].sum())


def ndcg_per_user(
    recommendations: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    k: int = 10,
) -> np.ndarray:
    """NDCG@k of each user in ``relevant`` with something relevant, in its order (paired
    comparisons of two models need each person's score, not the mean)."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for user, rel in relevant.items():
        if not rel:
            continue
        hits = _hits(list(recommendations.get(user, ())), rel, k, set())
        scores.append(_ndcg(hits, len(rel), discount))
    return np.asarray(scores, dtype=np.float64)


def ranking_metrics(
    recommendations: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    k: int = 10,
    train_items: Mapping[str, set[str]] | None = None,
) -> dict[str, float]:
    """NDCG@k, Recall@k (truncated), HitRate@k, MAP@k and MRR@k (reciprocal rank of the
    first hit within k) over users in ``relevant``; items a user had in train (their
    ``train_items``) are never relevant."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    totals = {"ndcg": 0.0, "recall": 0.0, "hit_rate": 0.0, "map": 0.0, "mrr": 0.0}
    had = train_items or {}
    users = [u for u, items in relevant.items() if items - had.get(u, set())]
    for user in users:
        seen = train_items.get(user, set()) if train_items else set()
        rel = relevant[user] - seen
        hits = _hits(list(recommendations.get(user, ())), rel, k, seen)
        ideal = min(len(rel), k)
        totals["ndcg"] += _ndcg(hits, len(rel), discount)
        totals["recall"] += hits.sum() / ideal
        totals["hit_rate"] += float(hits.any())
        if hits.any():
            precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
            totals["map"] += float(precision_at_hits.sum() / ideal)
            totals["mrr"] += 1.0 / (np.flatnonzero(hits)[0] + 1)
    n = max(len(users), 1)
    return {f"{name}@{k}": value / n for name, value in totals.items()}
