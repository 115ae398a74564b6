"""Forgetting an erased person: exact models equal a refit without them.

The crafted world: A is the only person who had item X, and shares a0 and a1 with B.
So every model that learns from other people offers X to B because of A, and must stop
once A is forgotten. Weights are real-valued so similarities never tie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.models.base import Recommender
from attune.models.forgetting import ErasedPerson
from attune.models.registry import create_model, load_model

DAY = 86_400.0
START = 1_700_000_000.0
POLICY = WeightPolicy(value_modes={"purchase": "linear"})


def crafted_frame(a_days: tuple[float, ...] = (20, 21, 22)) -> pd.DataFrame:
    """Events of A (a0, a1, X on ``a_days``), B (a2, a0, a1) and twelve others (a2..a7)."""
    rng = np.random.default_rng(7)
    rows = []

    def add(user: str, item: str, day: float) -> None:
        value = float(rng.uniform(0.5, 3.0))
        rows.append((user, item, "purchase", value, START + day * DAY + rng.uniform(0, 3600)))

    for item, day in zip(("a0", "a1", "X"), a_days, strict=True):
        add("A", item, day)
    for day, item in enumerate(("a2", "a0", "a1"), start=10):
        add("B", item, day)
    others = [f"a{i}" for i in range(2, 8)]
    for u in range(12):
        for item in rng.choice(others, size=int(rng.integers(2, 5)), replace=False):
            add(f"c{u:02d}", str(item), float(rng.uniform(0, 30)))
    add("c00", "a3", 31)  # the newest event, so "now" does not move without A
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])


def crafted(**kwargs: Any) -> InteractionDataset:
    return build_dataset(crafted_frame(**kwargs), POLICY)


def without(data: InteractionDataset, user_id: str) -> InteractionDataset:
    """``data`` as training would see it after the person's erasure, on the same items."""
    gone = data.user_position[user_id]
    keep = data.user_index != gone
    users = data.user_index[keep]
    timestamp = data.timestamp[keep]
    return InteractionDataset(
        user_ids=np.delete(data.user_ids, gone),
        item_ids=data.item_ids,
        user_index=np.where(users > gone, users - 1, users).astype(np.int32),
        item_index=data.item_index[keep],
        weight=data.weight[keep],
        timestamp=timestamp,
        reference_time=float(timestamp.max()),
        item_features=data.item_features,
        event_context=None if data.event_context is None else data.event_context[keep],
    )


def listed(model: Recommender, data: InteractionDataset, user_id: str, n: int = 3) -> set[str]:
    """What the model offers the person: their top ``n`` unseen items scoring above zero."""
    history = data.matrix[data.user_position[user_id]]
    index, scores = model.recommend(history, n)
    return {str(data.item_ids[i]) for i, s in zip(index[0], scores[0], strict=True) if s > 0}


def all_scores(model: Recommender, data: InteractionDataset) -> np.ndarray:
    return np.asarray(model.score(data.matrix, np.full(data.n_users, -1)), dtype=np.float64)


EXACT = [
    ("popularity", {}),
    ("popularity", {"count_users_once": False, "half_life_days": 5.0}),
    ("trending", {}),
    ("item_knn", {}),
    ("item_knn", {"weighting": "log", "neighbors": 2, "shrinkage": 0.0}),
    ("user_knn", {}),
    ("user_knn", {"weighting": "log", "neighbors": 3}),
    ("ease", {"l2": 1.0}),
    ("ease", {"l2": 5.0, "binarize": False}),
    ("transitions", {}),
    ("transitions", {"window": 1, "smoothing": 0.0}),
    ("transitions", {"window": 3, "smoothing": 7.3}),  # links of 1/2, 1/3: inexact floats
]
IDS = [f"{name}{params or ''}" for name, params in EXACT]
LISTS = {"popularity": 20, "trending": 20}  # non-personal lists: everything that scores


@pytest.mark.parametrize(("name", "params"), EXACT, ids=IDS)
def test_b_loses_the_item_only_a_linked_them_to(name: str, params: dict[str, Any]):
    data = crafted()
    model = create_model(name, params).fit(data)
    n = LISTS.get(name, 3)
    assert "X" in listed(model, data, "B", n), "the world is not crafted as intended"
    twin, exact = model.forgotten(ErasedPerson.from_dataset(data, "A"))
    assert exact is True
    assert "X" not in listed(twin, data, "B", n)
    b = data.user_position["B"]
    x_score = twin.score(data.matrix[b], np.array([-1]))[0, data.item_position["X"]]
    assert x_score <= 0, "serving reads a positive score as evidence"


@pytest.mark.parametrize(("name", "params"), EXACT, ids=IDS)
def test_a_loaded_model_forgets_to_what_a_refit_without_them_learns(
    name: str, params: dict[str, Any], tmp_path: Path
):
    data = crafted()
    create_model(name, params).fit(data).save(tmp_path)
    model = load_model(tmp_path)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is True
    rest = without(data, "A")
    refit = create_model(name, params).fit(rest)
    np.testing.assert_allclose(all_scores(model, rest), all_scores(refit, rest), atol=2e-5)
    model.save(tmp_path / "again")  # what it forgot stays forgotten in its next artifact
    again = load_model(tmp_path / "again")
    np.testing.assert_allclose(all_scores(again, rest), all_scores(refit, rest), atol=2e-5)


@pytest.mark.parametrize(("name", "params"), EXACT, ids=IDS)
def test_the_model_being_served_is_left_untouched(name: str, params: dict[str, Any]):
    data = crafted()
    model = create_model(name, params).fit(data)
    before = all_scores(model, data)
    twin, _ = model.forgotten(ErasedPerson.from_dataset(data, "A"))
    assert twin is not model
    np.testing.assert_array_equal(all_scores(model, data), before)


@pytest.mark.parametrize(("name", "params"), EXACT, ids=IDS)
def test_someone_without_trained_events_changes_nothing(name: str, params: dict[str, Any]):
    data = crafted()
    model = create_model(name, params).fit(data)
    before = all_scores(model, data)
    assert model.forget(ErasedPerson.from_dataset(data, "nobody")) is True
    np.testing.assert_array_equal(all_scores(model, data), before)


def test_item_knn_stays_exact_over_many_erasures_with_short_neighbour_lists():
    """Regression guard for the in-place re-ranking of untouched items' lists."""
    rng = np.random.default_rng(3)
    rows = [
        (f"u{u}", f"i{i}", "purchase", float(rng.uniform(0.5, 3)), START + u * 60 + i)
        for u in range(80)
        for i in rng.choice(60, size=int(rng.integers(2, 15)), replace=False)
    ]
    data = build_dataset(pd.DataFrame(rows, columns=crafted_frame().columns), POLICY)
    params = {"neighbors": 4, "shrinkage": 2.0}
    model = create_model("item_knn", params).fit(data)
    for user in ("u3", "u17", "u42", "u60"):
        assert model.forget(ErasedPerson.from_dataset(data, user)) is True
        data = without(data, user)
        refit = create_model("item_knn", params).fit(data)
        assert abs(model.similarity - refit.similarity).max() < 1e-5


def test_popularity_is_not_exact_when_they_did_the_newest_thing():
    data = crafted(a_days=(20, 21, 40))  # A's X is the newest event: "now" moves without it
    model = create_model("popularity").fit(data)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False
    assert model.item_scores[data.item_position["X"]] == 0.0, "their share is gone anyway"


def test_segmented_popularity_asks_for_a_refit():
    frame = crafted_frame()
    users = pd.DataFrame(
        {"user_id": sorted(set(frame["user_id"])), "traits": [{"region": "EU"}] * 14}
    )
    data = build_dataset(frame, POLICY, users=users)
    model = create_model(
        "popularity", {"segment_by": ["traits.region"], "min_segment_people": 2}
    ).fit(data)
    assert model.segments is not None and len(model.segments)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("item_knn", {"weighting": "bm25"}),
        ("item_knn", {"keep_interactions": False}),
        ("user_knn", {"weighting": "bm25"}),
    ],
)
def test_neighbour_models_that_cannot_be_exact_ask_for_a_refit(name, params):
    data = crafted()
    model = create_model(name, params).fit(data)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False


def test_a_person_whose_events_differ_from_training_asks_for_a_refit():
    data = crafted()
    model = create_model("user_knn").fit(data)
    person = ErasedPerson.from_dataset(data, "A")
    altered = ErasedPerson("A", person.item_index, person.weight * 2, person.timestamp, 9)
    assert model.holds(person) is True and model.holds(altered) is False
    assert model.forget(altered) is False


@pytest.mark.parametrize(
    ("name", "expected"), [("item_knn", True), ("user_knn", True), ("als", True), ("ease", None)]
)
def test_models_that_keep_rows_or_ids_know_whom_they_trained_on(name, expected):
    data = crafted()
    model = create_model(name, {"num_threads": 1} if name == "als" else {}).fit(data)
    assert model.holds(ErasedPerson.from_dataset(data, "A")) is expected
    stranger = ErasedPerson("stranger", np.array([0]), np.array([1.0]), np.array([START]), 9)
    assert model.holds(stranger) is (None if expected is None else False)


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("popularity", "state_reference_time"),
        ("trending", "state_reference_time"),
        ("ease", "state_precision_diagonal"),
        ("transitions", "state_row_counts"),
        ("item_knn", "state_interactions_data"),
    ],
)
def test_an_artifact_saved_before_forgetting_existed_asks_for_a_refit(name, dropped, tmp_path):
    data = crafted()
    create_model(name).fit(data).save(tmp_path)
    with np.load(tmp_path / "arrays.npz") as saved:
        prefix = dropped.removesuffix("_data")
        arrays = {k: saved[k] for k in saved.files if not k.startswith(prefix)}
    np.savez(tmp_path / "arrays.npz", **arrays)
    model = load_model(tmp_path)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False


def test_erased_person_from_history_weighs_like_training():
    from attune.store.protocols import HistoryEvent

    frame = crafted_frame()
    data = build_dataset(frame, POLICY)
    mine = frame[frame["user_id"] == "A"]
    history = [HistoryEvent(r.item_id, r.type, r.value, r.timestamp) for r in mine.itertuples()] + [
        HistoryEvent("unknown-item", "purchase", 1.0, START)
    ]
    built = ErasedPerson.from_history(
        "A",
        history,
        data.item_position,
        data.n_items,
        WeightPolicy(POLICY.type_weights, POLICY.value_modes, half_life_days=1.0),
    )
    expected = ErasedPerson.from_dataset(data, "A")
    assert (built.row != expected.row).nnz == 0
    np.testing.assert_array_equal(built.timestamp, expected.timestamp)
    assert sp.isspmatrix_csr(built.row) and built.row.shape == (1, data.n_items)
