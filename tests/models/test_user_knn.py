from __future__ import annotations

import numpy as np
import optuna

from attune.models.registry import create_model
from attune.models.user_knn import UserKNNConfig, UserKNNRecommender
from tests.models.contract import RecommenderContract, checkerboard


class TestUserKNN(RecommenderContract):
    model_name = "user_knn"


class TestUserKNNWithBM25(RecommenderContract):
    model_name = "user_knn"
    params = {"weighting": "bm25", "neighbors": 5}


def test_neighbours_are_capped_and_never_the_user_themself():
    data = checkerboard()
    model = create_model("user_knn", {"neighbors": 3}).fit(data)
    assert isinstance(model, UserKNNRecommender)
    users = np.arange(data.n_users)
    similarity = model.neighbor_similarity(data.matrix, users)
    assert np.diff(similarity.indptr).max() <= 3
    assert not similarity.diagonal().any(), "a training user was their own neighbour"
    # as an unknown user, the same history finds the training copy of itself first
    anonymous = model.neighbor_similarity(data.matrix[:1], np.array([-1])).toarray()[0]
    assert anonymous.argmax() == 0
    # every neighbour is on the user's side of the checkerboard
    rows, cols = similarity.nonzero()
    assert np.all(rows % 2 == cols % 2)


def test_search_space_yields_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        UserKNNConfig.model_validate(UserKNNConfig.search_space(study.ask()))
