"""Forgetting in models that cannot be exact (matrix factorisation, the hybrid's ranker)
and in composites (blend, hybrid), on the crafted world of :mod:`test_forget`."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.features.interactions import InteractionDataset, build_dataset
from attune.models.base import Recommender
from attune.models.forgetting import ErasedPerson
from attune.models.registry import create_model
from attune.store.protocols import HistoryEvent
from tests.models.test_forget import POLICY, START, all_scores, crafted, listed, without

FACTORS = [
    ("als", {"factors": 8, "regularization": 0.1, "alpha": 10.0, "num_threads": 1}),
    ("bpr", {"factors": 8, "num_threads": 1}),
    ("feature_mf", {"factors": 8, "epochs": 40, "batch_size": 32}),
]


@pytest.mark.parametrize(("name", "params"), FACTORS, ids=[name for name, _ in FACTORS])
def test_factor_models_drop_the_person_and_the_item_only_they_had(
    name: str, params: dict[str, Any]
):
    data = crafted()
    model = create_model(name, params).fit(data)
    assert "X" in listed(model, data, "B", n=1 if name == "bpr" else 3)
    twin, exact = model.forgotten(ErasedPerson.from_dataset(data, "A"))
    assert exact is False, "shared item factors still carry them: a refit is needed"
    assert twin.user_index_of(["A", "B"]).tolist() == [-1, 0], "B moves up into A's row"
    assert "A" not in twin.user_ids.tolist() and twin.user_factors.shape[0] == data.n_users - 1
    assert "X" not in listed(twin, data, "B")
    b_row = data.matrix[data.user_position["B"]]
    if name == "als":  # what a least-squares step gives an item without positives
        assert twin.score(b_row, np.array([-1]))[0, data.item_position["X"]] == 0.0
    else:  # BPR only samples it as a negative: a refit sinks it below everything (and the
        # feature model's share of it came from its id, learnt from them)
        index, _ = twin.recommend(b_row, n=data.n_items)
        assert str(data.item_ids[index[0][index[0] >= 0][-1]]) == "X"
    assert model.user_index_of(["A"]).tolist() == [0], "the served model is left untouched"


def test_factor_models_forget_nobody_they_never_saw():
    data = crafted()
    model = create_model(*FACTORS[0]).fit(data)
    assert model.forget(ErasedPerson("stranger", *[np.zeros(0)] * 3, data.n_items)) is True
    assert model.n_users == data.n_users


def test_a_blend_of_exact_models_is_exact():
    data = crafted()
    params = {
        "components": [
            {"algorithm": "item_knn", "weight": 1.0},
            {"algorithm": "ease", "params": {"l2": 1.0}, "weight": 0.5},
        ]
    }
    model = create_model("blend", params).fit(data)
    first_component = model.components[0]
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is True
    assert model.components[0] is not first_component, "components forget on copies"
    rest = without(data, "A")
    refit = create_model("blend", params).fit(rest)
    np.testing.assert_allclose(all_scores(model, rest), all_scores(refit, rest), atol=2e-5)


def test_a_blend_with_a_factor_model_asks_for_a_refit():
    data = crafted()
    params = {"components": [{"algorithm": "item_knn"}, {"algorithm": FACTORS[0][0]}]}
    model = create_model("blend", params).fit(data)
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False


def test_the_hybrid_forgets_in_components_and_aggregates_but_asks_for_a_refit():
    pytest.importorskip("lightgbm")
    data = crafted()
    params = {"components": [{"algorithm": "item_knn"}, {"algorithm": "popularity"}]}
    model = create_model("hybrid", params).fit(data)
    assert "X" in listed(model, data, "B", n=8)
    x = data.item_position["X"]
    assert model.forget(ErasedPerson.from_dataset(data, "A")) is False
    assert "X" not in listed(model, data, "B", n=8)
    rest = create_model("hybrid", params).fit(without(data, "A")).aggregates
    assert model.aggregates is not None and rest is not None
    for name, expected in rest.columns().items():
        if name not in ("days_since_first", "days_since_last"):  # runner-up times not kept
            np.testing.assert_allclose(model.aggregates.columns()[name], expected, atol=1e-9)
    assert np.isnan(model.aggregates.days_since_last[x]), "nobody has X any more"


def contextual_frame() -> pd.DataFrame:
    """Thirty people over eight items at all hours, with device and region contexts.

    A's events decide two things a refit without them sees differently: three of the
    ten "tv" events are A's (so "tv" falls below the ten events a value needs), and A's
    two "us" events are why "us" outnumbers "eu" (so the order of the values flips).
    """
    rng = np.random.default_rng(11)
    rows: list[tuple[Any, ...]] = []

    def add(user: str, item: str, device: str | None, region: str | None) -> None:
        time = START + float(rng.uniform(0, 14 * 86_400))
        context = {k: v for k, v in (("device", device), ("region", region)) if v}
        rows.append((user, item, "purchase", float(rng.uniform(0.5, 3)), time, context or None))

    for k, device in enumerate(("tv", "tv", "tv", "mobile", None, "desktop")):
        add("A", f"i{k}", device, "us" if k < 2 else None)
    devices = ["tv"] * 7 + ["mobile", "desktop"] * 60 + [None] * 20
    regions = ["eu"] * 60 + ["us"] * 59 + [None] * 28
    for k, (device, region) in enumerate(zip(devices, rng.permutation(regions), strict=True)):
        add(f"u{k % 30:02d}", f"i{rng.integers(8)}", device, region)
    frame = pd.DataFrame(
        rows, columns=["user_id", "item_id", "type", "value", "timestamp", "context"]
    )
    newest = frame["timestamp"].idxmax()
    frame.loc[newest, "user_id"] = "u00"  # "now" does not move without A
    return frame.sort_values("timestamp", kind="stable")


def test_the_hybrid_forgets_the_person_in_its_context_profiles():
    frame = contextual_frame()
    data = build_dataset(frame, POLICY)
    params = {"components": [{"algorithm": "popularity"}], "min_train_users": 1_000}
    model = create_model("hybrid", params).fit(data)
    served = [c.copy() for c in model.context.counts]
    rest = create_model("hybrid", params).fit(without(data, "A"))
    labels = zip(model.context.labels, rest.context.labels, strict=True)
    assert any(not np.array_equal(a, b) for a, b in labels), "the world is not as crafted"
    mine = frame[frame["user_id"] == "A"]
    stored = [  # as erasure reads them: with their contexts
        HistoryEvent(r.item_id, r.type, r.value, r.timestamp, r.context) for r in mine.itertuples()
    ]
    from_history = ErasedPerson.from_history("A", stored, data.item_position, data.n_items, POLICY)

    for person in (ErasedPerson.from_dataset(data, "A"), from_history):
        twin, exact = model.forgotten(person)
        assert exact is False  # the ranker
        assert twin.context.keys == rest.context.keys
        for k in range(len(rest.context.keys)):
            np.testing.assert_array_equal(twin.context.labels[k], rest.context.labels[k])
            np.testing.assert_allclose(twin.context.counts[k], rest.context.counts[k])
            np.testing.assert_allclose(twin.context.log_lift(k), rest.context.log_lift(k))
        np.testing.assert_allclose(twin.item_day_parts, rest.item_day_parts, atol=1e-12)
    for counts, before in zip(model.context.counts, served, strict=True):
        np.testing.assert_array_equal(counts, before)  # the served model is untouched


def test_content_holds_nobody():
    data = crafted()
    assert create_model("content").forget(ErasedPerson.from_dataset(data, "A")) is True


class _Memorising(Recommender):
    """A model without a forget of its own (as SASRec): the contract's default applies."""

    name = "memorising"

    def fit(self, dataset: InteractionDataset) -> Self:
        self.item_ids = dataset.item_ids
        self.seen = sp.csr_matrix(dataset.matrix)
        return self

    def score(self, history: sp.csr_matrix, user_index: np.ndarray) -> np.ndarray:
        return np.asarray(history @ (self.seen.T @ self.seen).toarray(), dtype=np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        return None


def test_a_model_that_cannot_forget_says_so_and_changes_nothing():
    data = crafted()
    model = _Memorising().fit(data)
    before = all_scores(model, data)
    twin, exact = model.forgotten(ErasedPerson.from_dataset(data, "A"))
    assert exact is False
    np.testing.assert_array_equal(all_scores(twin, data), before)
