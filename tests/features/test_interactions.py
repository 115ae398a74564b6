"""Interaction datasets and histories: weights, catalog alignment, recency ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from attune.features.interactions import WeightPolicy, build_dataset, history_matrix
from attune.store.protocols import HistoryEvent


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])


def test_weights_values_and_zero_weight_types():
    policy = WeightPolicy(
        type_weights={"view": 1.0, "purchase": 4.0, "impression": 0.0},
        value_modes={"purchase": "log1p"},
    )
    data = build_dataset(
        _frame(
            [
                ("u", "a", "view", np.nan, 1.0),
                ("u", "a", "view", np.nan, 2.0),
                ("u", "b", "purchase", np.e - 1, 3.0),
                ("u", "c", "impression", np.nan, 4.0),
            ]
        ),
        policy,
    )
    row = dict(zip(data.item_ids, data.matrix.toarray()[0], strict=True))
    assert row == {"a": 2.0, "b": np.float32(4.0)}, "views add up, log1p(e-1)=1, impressions drop"


def test_catalog_items_without_events_join_the_item_space_aligned():
    items = pd.DataFrame(
        {"item_id": ["z", "a"], "title": ["Zed", "Ay"], "categories": [["x"], ["y"]]}
    )
    data = build_dataset(_frame([("u", "a", "view", np.nan, 1.0)]), WeightPolicy(), items)
    assert list(data.item_ids) == ["a", "z"]
    assert list(data.item_features["title"]) == ["Ay", "Zed"]
    assert data.matrix.shape == (1, 2)


def test_history_ranks_follow_time_and_recency_decays_older_items():
    events = [
        HistoryEvent("a", "view", None, 1.0),
        HistoryEvent("b", "view", None, 2.0),
        HistoryEvent("a", "view", None, 3.0),
        HistoryEvent("c", "view", None, 4.0),
    ]
    history = history_matrix([events], {"a": 0, "b": 1, "c": 2}, 3, WeightPolicy())
    assert history.ranks.toarray()[0].tolist() == [2.0, 3.0, 1.0]
    assert history.weights.toarray()[0].tolist() == [2.0, 1.0, 1.0]
    decayed = history.weighted(1.0).toarray()[0]
    np.testing.assert_allclose(decayed, [2.0 * 0.5, 1.0 * 0.25, 1.0])
    assert history.weighted(None) is history.weights
