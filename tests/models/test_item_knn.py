from __future__ import annotations

import numpy as np
import pytest

from attune.errors import ValidationError
from attune.models.registry import create_model
from tests.models.contract import RecommenderContract, checkerboard


class TestItemKNN(RecommenderContract):
    model_name = "item_knn"


class TestItemKNNWithBM25(RecommenderContract):
    model_name = "item_knn"
    params = {"weighting": "bm25", "neighbors": 5}


def test_similar_items_stay_on_their_side():
    data = checkerboard()
    model = create_model("item_knn").fit(data)
    index, scores = model.similar_items(np.array([0, 1]), n=3)
    for row, item in enumerate((0, 1)):
        assert item not in index[row]
        assert {int(data.item_ids[i][1:]) % 2 for i in index[row]} == {item % 2}
        assert np.all(scores[row] > 0)


def test_neighbours_are_capped():
    model = create_model("item_knn", {"neighbors": 2}).fit(checkerboard())
    assert np.diff(model.similarity.indptr).max() <= 2


def test_bad_parameters_are_refused_with_the_model_name():
    with pytest.raises(ValidationError, match="item_knn"):
        create_model("item_knn", {"neighbors": 0})
    with pytest.raises(ValidationError, match="item_knn"):
        create_model("item_knn", {"nieghbors": 10})
