from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attune.errors import ValidationError
from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model
from tests.models.contract import RecommenderContract

DAY = 86_400.0
NOW = 1_700_000_000.0


class TestTrending(RecommenderContract):
    model_name = "trending"
    personalised = False


def _data():
    rows = []
    # "steady": 30 people spread over the last 100 days; "rising": 10 people in the last 2
    rows += [(f"s{u}", "steady", "view", np.nan, NOW - (u * 100 / 30) * DAY) for u in range(30)]
    rows += [(f"r{u}", "rising", "view", np.nan, NOW - (u % 2) * DAY) for u in range(10)]
    rows += [("x", "blip", "view", np.nan, NOW)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    return build_dataset(frame, WeightPolicy())


def test_rising_items_beat_steady_and_blips():
    data = _data()
    model = create_model("trending").fit(data)
    order = [data.item_ids[i] for i in np.argsort(-model.item_scores)]
    assert order[0] == "rising"
    assert order.index("blip") > order.index("rising")
    popular = create_model("popularity", {"half_life_days": None}).fit(data)
    assert data.item_ids[np.argmax(popular.item_scores)] == "steady"


def test_windows_must_be_ordered():
    with pytest.raises(ValidationError, match="trending"):
        create_model("trending", {"short_half_life_days": 10, "long_half_life_days": 5})
