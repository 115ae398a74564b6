"""A full offline report for a set of recommendation lists: accuracy, beyond-accuracy
metrics (coverage, diversity, novelty, popularity bias) and a per-segment breakdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    catalog: set[str] | int,
    item_categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Coverage@k, novelty@k, popularity percentile@k and intra-list diversity@k.

    * coverage: distinct recommended items of the catalog / catalog size (``catalog``:
      the catalog's item ids, or only its size, every list item then counted);
    * novelty: mean self-information −log2(share of users who had the item);
    * popularity_percentile: mean percentile of recommended items' train popularity
      (1.0 = the most popular item), the popularity bias of the lists;
    * diversity: mean pairwise category (Jaccard) distance within a list, when
      categories are known and lists hold a pair (undefined for k = 1: left out).
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
    size = catalog if isinstance(catalog, int) else len(catalog)
    covered = len(shown) if isinstance(catalog, int) else len(shown & catalog)
    out = {
        f"coverage@{k}": covered / max(size, 1),
        f"novelty@{k}": float(np.mean(novelty)) if novelty else 0.0,
        f"popularity_percentile@{k}": float(np.mean(popularity)) if popularity else 0.0,
    }
    if item_categories is not None and diversity:
        out[f"diversity@{k}"] = float(np.mean(diversity))
    return out


def evaluation_report(
    recommendations: Mapping[str, Sequence[str]],
    train: pd.DataFrame,
    test: pd.DataFrame,
    ks: Sequence[int] = (10, 20),
    item_categories: Mapping[str, Sequence[str]] | None = None,
    catalog_items: Iterable[str] = (),
) -> dict[str, Any]:
    """Every metric at every cut-off, overall and per user segment (new, light, heavy).

    ``train`` and ``test`` are frames with user_id and item_id columns (ids compared as
    text, as lists name them). Items a user had in train are never relevant
    (PROTOCOL.md), and users without relevant test items are left out of every metric
    (``dropped``: how many test users that was). The catalog is every item seen in
    train plus ``catalog_items`` (those known from metadata); coverage counts
    recommended items of it. Segments count each user's training interactions.
    """
    train = _as_text(train)
    test = _as_text(test)
    recommendations = {str(u): [str(i) for i in items] for u, items in recommendations.items()}
    train_items = {u: set(g) for u, g in train.groupby("user_id")["item_id"]}
    interactions = train.groupby("user_id").size()
    relevant = {}
    for user, group in test.groupby("user_id")["item_id"]:
        wanted = set(group) - train_items.get(user, set())
        if wanted:
            relevant[user] = wanted
    catalog = set(train["item_id"]) | {str(i) for i in catalog_items}
    scored = {u: recommendations.get(u, []) for u in relevant}
    overall: dict[str, float] = {}
    for k in ks:
        overall.update(ranking_metrics(recommendations, relevant, k, train_items))
        overall.update(beyond_accuracy(scored, train, k, catalog, item_categories))
    segments: dict[str, dict[str, Any]] = {}
    for name, _, _ in SEGMENTS:
        members = {
            u: r for u, r in relevant.items() if _segment(int(interactions.get(u, 0))) == name
        }
        if not members:
            continue
        seg: dict[str, Any] = {"users": len(members)}
        for k in ks:
            seg.update(ranking_metrics(recommendations, members, k, train_items))
        segments[name] = seg
    return {
        "users": len(relevant),
        "dropped": test["user_id"].nunique() - len(relevant),
        "catalog_size": len(catalog),
        "overall": overall,
        "segments": segments,
    }


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with user and item ids as text (an int id and its list entry agree)."""
    return frame.assign(user_id=frame["user_id"].astype(str), item_id=frame["item_id"].astype(str))
