from __future__ import annotations

import numpy as np
import pandas as pd

from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model
from tests.models.contract import RecommenderContract

DAY = 86_400.0


class TestPopularity(RecommenderContract):
    model_name = "popularity"
    personalised = False


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])


def test_recent_interest_outranks_old_interest():
    now = 1_700_000_000.0
    rows = [(f"old{u}", "old", "view", np.nan, now - 300 * DAY) for u in range(5)]
    rows += [(f"new{u}", "new", "view", np.nan, now - 1 * DAY) for u in range(3)]
    data = build_dataset(_frame(rows), WeightPolicy())
    decayed = create_model("popularity", {"half_life_days": 30}).fit(data)
    flat = create_model("popularity", {"half_life_days": None}).fit(data)
    assert (
        decayed.item_ids[decayed.recommend(data.matrix[:1], 1, exclude_history=False)[0][0, 0]]
        == "new"
    )
    assert (
        flat.item_ids[flat.recommend(data.matrix[:1], 1, exclude_history=False)[0][0, 0]] == "old"
    )


def test_one_heavy_user_does_not_make_an_item_popular():
    now = 1_700_000_000.0
    rows = [("fan", "niche", "view", np.nan, now - k) for k in range(50)]
    rows += [(f"p{u}", "broad", "view", np.nan, now) for u in range(3)]
    data = build_dataset(_frame(rows), WeightPolicy())
    model = create_model("popularity").fit(data)
    best = model.recommend(data.matrix[:1], 1, exclude_history=False)[0][0, 0]
    assert model.item_ids[best] == "broad"
