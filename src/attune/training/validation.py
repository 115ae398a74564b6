"""Fit a candidate on one part of the data and score its lists on a held-out part.

This is where models meet :mod:`attune.evaluation` (which never imports a model): the
lists are produced exactly as serving produces them, from each person's history
weighted by the candidate's :class:`WeightPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from attune.evaluation.metrics import ranking_metrics
from attune.features.interactions import (
    InteractionDataset,
    WeightPolicy,
    build_dataset,
    frame_history,
)
from attune.models.base import Recommender
from attune.models.registry import create_model

CHUNK_USERS = 2_048


@dataclass(frozen=True)
class Candidate:
    """A model and how it reads history: what tuning searches over and training fits."""

    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "params": dict(self.params)}


def fit_candidate(
    candidate: Candidate,
    train: pd.DataFrame,
    policy: WeightPolicy,
    items: pd.DataFrame | None = None,
) -> tuple[Recommender, InteractionDataset]:
    dataset = build_dataset(train, WeightPolicy(policy.type_weights, policy.value_modes), items)
    return create_model(candidate.algorithm, candidate.params).fit(dataset), dataset


def recommend_lists(
    model: Recommender,
    item_position: Mapping[str, int],
    history: pd.DataFrame,
    users: Sequence[str],
    policy: WeightPolicy,
    n: int,
) -> dict[str, list[str]]:
    """Top-``n`` lists for ``users`` given their events in ``history`` (serving's path);
    ``item_position``: the model's item id → position."""
    out: dict[str, list[str]] = {}
    by_user = history[history["user_id"].astype(str).isin(set(users))]
    for start in range(0, len(users), CHUNK_USERS):
        part = list(users[start : start + CHUNK_USERS])
        rows = frame_history(by_user, part, item_position, model.n_items, policy)
        # like serving: every person is scored from their history (models fold them in)
        index, _ = model.recommend(rows, n)
        for r, user in enumerate(part):
            out[user] = [str(model.item_ids[i]) for i in index[r] if i >= 0]
    return out


def score_candidate(
    candidate: Candidate,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    policy: WeightPolicy,
    k: int = 10,
    items: pd.DataFrame | None = None,
) -> dict[str, float]:
    """NDCG@k and friends of ``candidate`` trained on ``train``, judged on ``valid``."""
    model, dataset = fit_candidate(candidate, train, policy, items)
    users = sorted(set(valid["user_id"].astype(str)))
    lists = recommend_lists(model, dataset.item_position, train, users, policy, max(k, 20))
    train_items = {u: set(g) for u, g in train.groupby("user_id")["item_id"]}
    relevant = {u: set(g) for u, g in valid.groupby("user_id")["item_id"]}
    metrics = ranking_metrics(lists, relevant, k, train_items)
    metrics.update(ranking_metrics(lists, relevant, 20, train_items))
    return metrics
