from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Self

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from attune.errors import ValidationError
from attune.features.interactions import InteractionDataset
from attune.models.factorization import MatrixFactorizationBase
from attune.models.implicit_mf import ALSConfig, BPRConfig
from attune.models.registry import create_model, load_model
from tests.models.contract import RecommenderContract, checkerboard

# few factors and a firm penalty keep only the two parity blocks, which is the checkerboard's
# known answer; more factors would also fit each user's own holes
ALS_PARAMS = {"factors": 4, "iterations": 15, "regularization": 1.0}
# one thread: implicit's BPR updates factors from several threads without locks
BPR_PARAMS = {"factors": 8, "iterations": 50, "num_threads": 1}
PARAMS = {"als": ALS_PARAMS, "bpr": BPR_PARAMS}


class TestALS(RecommenderContract):
    model_name = "als"
    params = ALS_PARAMS


class TestBPR(RecommenderContract):
    model_name = "bpr"
    params = BPR_PARAMS


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    data = checkerboard()
    models = {name: create_model(name, params).fit(data) for name, params in PARAMS.items()}
    assert all(isinstance(m, MatrixFactorizationBase) for m in models.values())
    return models


def test_als_fold_in_lands_near_the_stored_factors(fitted):
    data = checkerboard()
    model = fitted["als"]
    rows = np.arange(data.n_users)
    stored = model.score(data.matrix, rows)
    folded = model.score(data.matrix, np.full(data.n_users, -1))
    np.testing.assert_allclose(folded, stored, atol=0.02 * np.abs(stored).max())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_known_users_are_scored_by_their_stored_factors(fitted, name):
    data = checkerboard()
    model = fitted[name]
    empty = sp.csr_matrix((3, data.n_items), dtype=np.float32)
    users = np.array([0, 1, 7])
    expected = model.user_factors[users] @ model.item_factors.T
    np.testing.assert_allclose(model.score(empty, users), expected, rtol=1e-6)
    index, _ = model.recommend(empty, n=2, user_index=users)
    parity = users % 2
    for row in range(3):
        assert {int(data.item_ids[i][1:]) % 2 for i in index[row]} == {parity[row]}
    # the same empty history for an unknown user folds in to nothing
    assert not model.score(empty[:1], np.array([-1])).any()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_similar_items_stay_on_their_side(fitted, name):
    data = checkerboard()
    index, scores = fitted[name].similar_items(np.array([0, 1, 6]), n=3)
    for row, item in enumerate((0, 1, 6)):
        assert item not in index[row]
        assert {int(data.item_ids[i][1:]) % 2 for i in index[row]} == {item % 2}
        assert np.all(np.diff(scores[row]) <= 0)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_same_random_state_same_factors(fitted, name):
    data = checkerboard()
    again = create_model(name, PARAMS[name]).fit(data)
    np.testing.assert_array_equal(again.item_factors, fitted[name].item_factors)
    np.testing.assert_array_equal(again.user_factors, fitted[name].user_factors)
    other = create_model(name, {**PARAMS[name], "random_state": 7}).fit(data)
    assert not np.array_equal(other.item_factors, fitted[name].item_factors)


def test_default_bpr_on_small_data_gives_the_same_model_every_run():
    """Without a configured thread count, BPR on small data trains on one thread, so
    retraining on the same events gives the same factors (several lock-free threads
    would give another model each time, and tuning would chase that noise)."""
    from attune.models.implicit_mf import BPR_SHARED_THREADS_FROM, _bpr_threads

    data = checkerboard()
    first = create_model("bpr", {"factors": 8, "iterations": 30}).fit(data)
    again = create_model("bpr", {"factors": 8, "iterations": 30}).fit(data)
    np.testing.assert_array_equal(again.item_factors, first.item_factors)
    assert _bpr_threads(None, BPR_SHARED_THREADS_FROM - 1) == 1
    assert _bpr_threads(None, BPR_SHARED_THREADS_FROM) == 0  # one per core on large data
    assert _bpr_threads(3, 10) == 3  # a configured count is kept


def test_factors_are_float32_and_shaped_by_the_data(fitted):
    data = checkerboard()
    als, bpr = fitted["als"], fitted["bpr"]
    assert als.user_factors.shape == (data.n_users, 4)
    assert als.item_factors.shape == (data.n_items, 4)
    # implicit's BPR appends an item-bias column and a constant 1 to the users
    assert bpr.item_factors.shape == (data.n_items, 9)
    assert np.all(bpr.user_factors[:, -1] == 1.0)
    assert all(m.user_factors.dtype == np.float32 for m in (als, bpr))
    folded = bpr.user_vectors(data.matrix[:2], np.array([-1, -1]))
    assert np.all(folded[:, -1] == 1.0)


def test_user_ids_map_to_rows_and_survive_save_load(fitted, tmp_path: Path):
    data = checkerboard()
    model = fitted["als"]
    assert model.user_position["u03"] == 3
    assert model.user_index_of(["u03", "stranger", "u00"]).tolist() == [3, -1, 0]
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, MatrixFactorizationBase)
    assert loaded.user_ids.tolist() == data.user_ids.tolist()
    rows = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(data.matrix, rows), model.score(data.matrix, rows))


class _GivenFactors(MatrixFactorizationBase):
    """A family member with no training of its own: the default fold-in is all it adds."""

    name = "given_factors"

    def fit(self, dataset: InteractionDataset) -> Self:
        raise NotImplementedError


def test_default_fold_in_is_the_ridge_projection(fitted):
    data = checkerboard()
    source = fitted["als"]
    model = _GivenFactors()
    model.item_ids = source.item_ids
    model._set_state(source.user_ids, source.user_factors, source.item_factors)
    items = source.item_factors.astype(np.float64)
    gram = items.T @ items + model.fold_in_regularization * np.eye(items.shape[1])
    expected = data.matrix.toarray() @ items @ np.linalg.inv(gram)
    unknown = np.full(data.n_users, -1)
    vectors = model.user_vectors(data.matrix, unknown)
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)
    index, _ = model.recommend(data.matrix, n=2)
    for u in range(data.n_users):
        assert {int(data.item_ids[i][1:]) % 2 for i in index[u]} == {u % 2}


def test_bad_user_index_is_refused(fitted):
    data = checkerboard()
    with pytest.raises(ValidationError):
        fitted["als"].score(data.matrix[:1], np.array([data.n_users]))


@pytest.mark.parametrize("config_class", [ALSConfig, BPRConfig])
def test_search_space_yields_valid_configs(config_class: type[ALSConfig | BPRConfig]):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        config_class.model_validate(config_class.search_space(study.ask()))


def test_bad_parameters_are_refused_with_the_model_name():
    with pytest.raises(ValidationError, match="als"):
        create_model("als", {"factors": 0})
    with pytest.raises(ValidationError, match="bpr"):
        create_model("bpr", {"learning_rte": 0.1})


def test_importing_the_models_does_not_import_implicit():
    code = (
        "import sys, attune.models.registry, attune.models.implicit_mf; "
        "print('implicit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _random_world(seed: int = 0) -> InteractionDataset:
    """Sixty people with twelve of forty items each, drawn at random."""
    import pandas as pd

    from attune.features.interactions import WeightPolicy, build_dataset

    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u:02d}", f"i{i:02d}", "view", np.nan, 1_700_000_000.0 + k)
        for u in range(60)
        for k, i in enumerate(rng.choice(40, 12, replace=False))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    return build_dataset(frame, WeightPolicy())


def test_bpr_mapped_fold_in_places_people_nearer_where_training_put_them(tmp_path: Path):
    """Serving folds everyone in from their history; with ``fold_in="mapped"`` a training
    person lands nearer their learnt row than at the plain mean of their items."""
    data = _random_world()
    params = {"factors": 8, "iterations": 50, "num_threads": 1}
    mapped = create_model("bpr", {**params, "fold_in": "mapped"}).fit(data)
    plain = create_model("bpr", params).fit(data)
    np.testing.assert_array_equal(mapped.item_factors, plain.item_factors)  # same training
    unknown = np.full(data.n_users, -1)
    learnt = mapped.user_factors
    near = mapped.user_vectors(data.matrix, unknown)
    mean = plain.user_vectors(data.matrix, unknown)
    assert np.all(near[:, -1] == 1.0) and np.all(mean[:, -1] == 1.0)
    assert np.linalg.norm(near - learnt) < 0.8 * np.linalg.norm(mean - learnt)
    # the default places people at the weighted mean of their items' factors
    weights = data.matrix.toarray()
    expected = weights @ plain.item_factors / weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mean[:, :-1], expected[:, :-1], rtol=1e-4, atol=1e-6)
    # the map is part of the artifact
    mapped.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(
        loaded.score(data.matrix, unknown), mapped.score(data.matrix, unknown), rtol=1e-6
    )
