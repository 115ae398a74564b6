"""Quality floors on real data: MovieLens-100K under the per-user temporal split.

A floor catches a model that still runs but has stopped learning. Measured values
(2026-11-27): popularity NDCG@10 0.097, item-kNN 0.186.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attune.evaluation.metrics import ranking_metrics
from attune.evaluation.splits import temporal_user_split
from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model
from tests.conftest import SHARED_DATA

ML100K = SHARED_DATA / "ml-100k" / "ml-100k.inter"


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not ML100K.is_file():
        pytest.skip(f"{ML100K} not found")
    raw = pd.read_csv(ML100K, sep="\t", dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    frame = pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": raw["item_id"],
            "type": "rating",
            "value": raw["rating"].astype(float),
            "timestamp": raw["timestamp"].astype(float),
        }
    )
    return temporal_user_split(frame)


@pytest.mark.parametrize(("name", "floor"), [("popularity", 0.085), ("item_knn", 0.17)])
def test_ndcg_floor_on_ml100k(split, name, floor):
    train, test = split
    data = build_dataset(train, WeightPolicy())
    model = create_model(name).fit(data)
    users = sorted(set(test["user_id"]))
    rows = np.array([data.user_position[u] for u in users])
    index, _ = model.recommend(data.matrix[rows], 10)
    recs = {u: [str(data.item_ids[i]) for i in index[r] if i >= 0] for r, u in enumerate(users)}
    relevant = {u: set(g) for u, g in test.groupby("user_id")["item_id"]}
    seen = {u: set(g) for u, g in train.groupby("user_id")["item_id"]}
    ndcg = ranking_metrics(recs, relevant, 10, seen)["ndcg@10"]
    assert ndcg >= floor, f"{name}: NDCG@10 {ndcg:.4f} below the floor {floor}"
