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


@pytest.mark.parametrize(
    "params",
    [{}, {"shrinkage": 10.0, "neighbors": 7}, {"weighting": "bm25", "neighbors": 3}],
)
def test_sparse_catalogs_get_the_same_neighbours_as_dense_ones(monkeypatch, params):
    """A large, sparse catalog picks neighbours from the nonzero co-occurrences only; the
    lists must be those the dense rows give, ties (integer weights make many) included."""
    import pandas as pd

    import attune.models.item_knn as item_knn
    from attune.features.interactions import WeightPolicy, build_dataset

    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 2_000, n).astype(str),
            "item_id": (rng.zipf(1.3, n) % 3_000).astype(str),
            "type": "view",
            "value": rng.integers(1, 4, n).astype(float),
            "timestamp": np.arange(n, dtype=float),
        }
    )
    data = build_dataset(frame, WeightPolicy(value_modes={"view": "linear"}))
    fitted = {}
    for path, share in (("dense", -1.0), ("sparse", 2.0)):
        monkeypatch.setattr(item_knn, "SPARSE_SHARE", share)
        fitted[path] = create_model("item_knn", params).fit(data).similarity
    dense, sparse = fitted["dense"], fitted["sparse"]
    assert dense.nnz > 1_000 and np.diff(dense.indptr).max() == params.get("neighbors", 100)
    assert (dense != sparse).nnz == 0
