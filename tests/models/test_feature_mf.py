"""Factorisation over item features (LightFM's model): the contract, and what the labels add."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.feature_mf import FeatureMFConfig, _Net, item_feature_matrix
from attune.models.registry import create_model
from tests.models.contract import RecommenderContract

PARAMS = {"factors": 8, "epochs": 40, "batch_size": 32}


class TestFeatureMF(RecommenderContract):
    model_name = "feature_mf"
    params = PARAMS


def _shop(with_cold_item: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two camps of 30 people: one buys comedies (c0..c5), the other dramas (d0..d5).
    ``c6`` is a comedy and ``d6`` a drama nobody has touched yet."""
    rows = []
    for u in range(60):
        camp = "c" if u < 30 else "d"
        for i in range(6):
            if (u + i) % 6 != 0:  # everyone misses one item of their camp
                rows.append((f"u{u}", f"{camp}{i}", "view", np.nan, 1_700_000_000.0 + u * 10 + i))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    labels = {"c": ["Comedy"], "d": ["Drama"]}
    ids = [f"{camp}{i}" for camp in "cd" for i in range(7 if with_cold_item else 6)]
    catalog = pd.DataFrame(
        {"item_id": ids, "categories": [labels[item[0]] for item in ids], "tags": [[]] * len(ids)}
    )
    return events, catalog


def test_an_item_nobody_touched_is_placed_by_its_labels():
    events, catalog = _shop()
    data = build_dataset(events, WeightPolicy(), catalog)
    model = create_model("feature_mf", PARAMS).fit(data)
    position = {item: k for k, item in enumerate(data.item_ids)}
    comedy_fan, drama_fan = data.user_position["u3"], data.user_position["u40"]
    scores = model.score(data.matrix[[comedy_fan, drama_fan]], np.array([-1, -1]))
    c6, d6 = position["c6"], position["d6"]
    assert scores[0, c6] > scores[0, d6], "the comedy fan should be offered the new comedy"
    assert scores[1, d6] > scores[1, c6], "the drama fan should be offered the new drama"


def test_without_labels_a_new_item_is_never_offered_first():
    events, catalog = _shop()
    data = build_dataset(events, WeightPolicy(), catalog)
    model = create_model("feature_mf", {**PARAMS, "label_weight": 0.0}).fit(data)
    position = {item: k for k, item in enumerate(data.item_ids)}
    index, _ = model.recommend(data.matrix[[data.user_position["u3"]]], n=1)
    assert data.item_ids[index[0, 0]] != "c6"
    assert position["c6"] not in index[0]


def test_feature_rows_sum_to_one_and_hold_the_id_and_labels():
    _events, catalog = _shop()
    catalog.loc[0, "tags"] = ["Classic"]
    matrix = item_feature_matrix(catalog, len(catalog), FeatureMFConfig(label_weight=2.0))
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    assert matrix.shape == (len(catalog), len(catalog) + 3)  # ids, cat:comedy/drama, tag:classic
    first = matrix[0].toarray().ravel()
    assert first[0] == pytest.approx(1 / 5)  # id 1, two labels of weight 2
    no_catalog = item_feature_matrix(None, 4, FeatureMFConfig())
    assert (no_catalog != __import__("scipy").sparse.identity(4)).nnz == 0


def test_same_seed_same_model():
    events, catalog = _shop()
    data = build_dataset(events, WeightPolicy(), catalog)
    first = create_model("feature_mf", PARAMS).fit(data)
    again = create_model("feature_mf", PARAMS).fit(data)
    np.testing.assert_array_equal(first.item_factors, again.item_factors)


def test_a_fit_deadline_keeps_the_epochs_done():
    from attune.models.deadline import fit_deadline

    events, catalog = _shop()
    data = build_dataset(events, WeightPolicy(), catalog)
    with fit_deadline(0.0):
        model = create_model("feature_mf", {**PARAMS, "epochs": 1_000}).fit(data)
    assert model.epochs_run < 1_000
    assert model.item_factors.shape == (data.n_items, PARAMS["factors"] + 1)


def test_search_space_gives_valid_configs():
    study = optuna.create_study()
    for _ in range(5):
        FeatureMFConfig(**FeatureMFConfig.search_space(study.ask()))


def test_the_written_out_gradients_match_the_loss():
    """The step's hand-written gradients are the loss's own (central differences)."""
    events, catalog = _shop()
    data = build_dataset(events, WeightPolicy(), catalog)
    config = FeatureMFConfig(factors=4, regularization=0.01)
    features = item_feature_matrix(data.item_features, data.n_items, config)
    net = _Net(data.n_users, features, config, np.random.default_rng(0))
    for table in ("users", "vectors", "biases"):  # float64, so differences are exact enough
        setattr(net, table, getattr(net, table).astype(np.float64) * 50)
    who, positive, negative = np.array([0, 0, 3]), np.array([1, 2, 1]), np.array([13, 12, 13])
    found = net.gradients(who, positive, negative)
    step = 1e-6
    for table, rows, gradient in (
        ("users", found.people, found.person),
        ("vectors", found.features, found.vector),
        ("biases", found.features, found.bias),
    ):
        values = getattr(net, table)
        for k, row in enumerate(rows):
            for column in range(values.shape[1]) if values.ndim == 2 else [None]:
                at = (row, column) if column is not None else (row,)
                kept = values[at]
                values[at] = kept + step
                above = net.loss(who, positive, negative)
                values[at] = kept - step
                below = net.loss(who, positive, negative)
                values[at] = kept
                expected = (above - below) / (2 * step)
                got = gradient[k, column] if column is not None else gradient[k]
                assert got == pytest.approx(expected, rel=1e-4, abs=1e-7), (table, at)
    untouched = np.setdiff1d(np.arange(len(net.biases)), found.features)
    assert len(untouched) > 0  # the other items' features get no gradient and stay put
