"""A full offline report for a set of recommendation lists: accuracy, beyond-accuracy
metrics (coverage, diversity, novelty, popularity bias) and a per-segment breakdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from attune.evaluation.metrics import ranking_metrics

SEGMENTS = (("new", 0, 5), ("light", 6, 30), ("heavy", 31, None))
"""User segments by number of training interactions (inclusive bounds)."""


def _segment(count: int) -> str:
    for name, low, high in SEGMENTS:
        if count >= low and (high is None or count <= high):
            return name
    return "heavy"


def beyond_accuracy(
    recommendations: Mapping[str, Sequence[str]],
    train: pd.DataFrame,
    k: int,
    catalog_size: int,
    item_categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Coverage@k, novelty@k, popularity percentile@k and intra-list diversity@k.

    * coverage: distinct recommended items / catalog size;
    * novelty: mean self-information −log2(share of users who had the item);
    * popularity_percentile: mean percentile of recommended items' train popularity
      (1.0 = the most popular item), the popularity bias of the lists;
    * diversity: mean pairwise category (Jaccard) distance within a list, when
      categories are known.
    """
    users_per_item = train.groupby("item_id")["user_id"].nunique()
    n_users = max(train["user_id"].nunique(), 1)
    percentile = users_per_item.rank(pct=True)
    shown: set[str] = set()
    novelty, popularity, diversity = [], [], []
    for items in recommendations.values():
        top = list(items)[:k]
        shown.update(top)
        for item in top:
            share = users_per_item.get(item, 0) / n_users
            novelty.append(-np.log2(share) if share > 0 else np.log2(n_users))
            popularity.append(float(percentile.get(item, 0.0)))
        if item_categories is not None and len(top) > 1:
            distances = []
            for a, b in combinations(top, 2):
                ca, cb = set(item_categories.get(a, ())), set(item_categories.get(b, ()))
                union = ca | cb
                distances.append(1.0 - len(ca & cb) / len(union) if union else 0.0)
            diversity.append(float(np.mean(distances)))
    out = {
        f"coverage@{k}": len(shown) / max(catalog_size, 1),
        f"novelty@{k}": float(np.mean(novelty)) if novelty else 0.0,
        f"popularity_percentile@{k}": float(np.mean(popularity)) if popularity else 0.0,
    }
    if item_categories is not None:
        out[f"diversity@{k}"] = float(np.mean(diversity)) if diversity else 0.0
    return out


def evaluation_report(
    recommendations: Mapping[str, Sequence[str]],
    train: pd.DataFrame,
    test: pd.DataFrame,
    ks: Sequence[int] = (10, 20),
    item_categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Every metric at every cut-off, overall and per user segment (new, light, heavy).

    ``train`` and ``test`` are frames with user_id and item_id columns. Items a user had
    in train are never relevant (PROTOCOL.md), and users without relevant test items
    are left out.
    """
    train_items = {u: set(g) for u, g in train.groupby("user_id")["item_id"]}
    relevant = {}
    for user, group in test.groupby("user_id")["item_id"]:
        wanted = set(group) - train_items.get(user, set())
        if wanted:
            relevant[user] = wanted
    catalog = len(set(train["item_id"]) | set(test["item_id"]))
    overall: dict[str, float] = {}
    for k in ks:
        overall.update(ranking_metrics(recommendations, relevant, k, train_items))
        overall.update(beyond_accuracy(recommendations, train, k, catalog, item_categories))
    segments: dict[str, dict[str, Any]] = {}
    for name, _, _ in SEGMENTS:
        members = {
            u: r for u, r in relevant.items() if _segment(len(train_items.get(u, ()))) == name
        }
        if not members:
            continue
        seg: dict[str, Any] = {"users": len(members)}
        for k in ks:
            seg.update(ranking_metrics(recommendations, members, k, train_items))
        segments[name] = seg
    return {
        "users": len(relevant),
        "catalog_size": catalog,
        "overall": overall,
        "segments": segments,
    }
