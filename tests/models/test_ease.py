from __future__ import annotations

import numpy as np

from attune.models.registry import create_model
from tests.models.contract import RecommenderContract, checkerboard


class TestEASE(RecommenderContract):
    model_name = "ease"
    params = {"l2": 5.0}


class TestEASEOnAFewItems(RecommenderContract):
    """Only the most popular items are modelled; the rest are never scored."""

    model_name = "ease"
    params = {"l2": 5.0, "max_items": 12}


def test_unmodelled_items_score_nothing():
    data = checkerboard()
    model = create_model("ease", {"l2": 5.0, "max_items": 4}).fit(data)
    assert len(model.modelled) == 4
    scores = model.score(data.matrix, np.full(data.n_users, -1))
    others = np.setdiff1d(np.arange(data.n_items), model.modelled)
    assert np.all(scores[:, others] == 0)
