"""The hybrid ranks by request context: a world where only the device tells what people
take next, the context profiles' save/load round trip, and models that ignore context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attune.features.context import ContextProfiles, request_label, weekday
from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.models.hybrid import HybridRecommender, dataset_history, label_groups
from attune.models.registry import create_model, load_model

N_PEOPLE, PER_DEVICE, EVENTS = 300, 20, 16
DEVICES = ("mobile", "desktop")
PARAMS = {
    "components": [{"algorithm": "popularity"}, {"algorithm": "item_knn"}],
    "candidates_per_component": 2 * PER_DEVICE,
    "n_estimators": 60,
    "learning_rate": 0.1,
    "min_child_samples": 20,
}


def device_world(seed: int = 0) -> InteractionDataset:
    """Each event is on a random device, and its item is a random one of that device's
    items ("m" on mobile, "d" on desktop): taste, time and popularity say nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(N_PEOPLE):
        start = 1_700_000_000.0 + 86_400 * rng.integers(30)
        for t in range(EVENTS):
            device = DEVICES[rng.integers(2)]
            item = f"{device[0]}{rng.integers(PER_DEVICE):02d}"
            rows.append((f"p{person:03d}", item, start + 600 * t, {"device": device}))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "context"])
    return build_dataset(frame.assign(type="view", value=np.nan), WeightPolicy())


@pytest.fixture(scope="module")
def world() -> tuple[InteractionDataset, HybridRecommender]:
    data = device_world()
    model = create_model("hybrid", PARAMS).fit(data)
    assert isinstance(model, HybridRecommender) and model.booster is not None
    return data, model


def top_items(model, data: InteractionDataset, context: dict | None, n: int = 5) -> np.ndarray:
    history = dataset_history(data, np.arange(data.n_users))
    if context is not None:
        history = history.in_context([context] * data.n_users)
    index, _ = model.recommend(history, n)
    return data.item_ids[index]


def share_of(lists: np.ndarray, prefix: str) -> float:
    return float(np.char.startswith(lists.astype(str), prefix).mean())


def test_the_ranker_puts_the_requests_device_items_first(world):
    data, model = world
    assert "device" in model.context.keys
    mobile = top_items(model, data, {"device": "mobile"})
    desktop = top_items(model, data, {"device": "desktop"})
    # nothing but the request's device separates the two halves of the catalog
    assert share_of(mobile, "m") > 0.9, share_of(mobile, "m")
    assert share_of(desktop, "d") > 0.9, share_of(desktop, "d")
    # a device the data never had, or no context, reads as neutral: a mixed list
    for unknown in ({"device": "tv"}, None):
        assert 0.2 < share_of(top_items(model, data, unknown), "m") < 0.8


def test_saved_and_loaded_model_keeps_its_context_profiles(world, tmp_path: Path):
    data, model = world
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, HybridRecommender)
    assert loaded.context.keys == model.context.keys
    for k in range(len(model.context.keys)):
        np.testing.assert_array_equal(loaded.context.labels[k], model.context.labels[k])
        np.testing.assert_array_equal(loaded.context.counts[k], model.context.counts[k])
    for context in ({"device": "mobile"}, {"device": "desktop", "hour": "20"}, None):
        np.testing.assert_array_equal(
            top_items(loaded, data, context), top_items(model, data, context)
        )


def test_models_that_ignore_context_answer_as_before(world):
    data, _ = world
    for name, params in (("item_knn", {}), ("hybrid", {**PARAMS, "context_keys": []})):
        model = create_model(name, params).fit(data)
        plain = top_items(model, data, None, n=10)
        for device in DEVICES:
            np.testing.assert_array_equal(top_items(model, data, {"device": device}, n=10), plain)


def test_data_without_context_or_clock_gives_no_context_feature():
    # every event in the same hour of one day, none with a stored context
    rows = [(f"p{u}", f"i{(u + k) % 30}", 1_700_000_000.0 + k) for u in range(60) for k in range(8)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    data = build_dataset(frame.assign(type="view", value=np.nan), WeightPolicy())
    model = create_model("hybrid", {**PARAMS, "min_train_users": 10}).fit(data)
    assert not model.context  # type: ignore[attr-defined]
    assert not any(n.startswith("context_") for n in model.booster.feature_name())  # type: ignore[attr-defined]
    asked = top_items(model, data, {"device": "mobile", "daypart": "evening"}, n=10)
    np.testing.assert_array_equal(asked, top_items(model, data, None, n=10))


def test_profiles_shrink_items_with_few_events_toward_everyone():
    # 100 mobile and 100 desktop events on two busy items; one rare item seen once on mobile
    rows = [("u", "busy_m", 0.0, {"device": "mobile"})] * 100
    rows += [("u", "busy_d", 0.0, {"device": "desktop"})] * 100
    rows += [("v", "rare", 0.0, {"device": "mobile"})]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "context"])
    data = build_dataset(frame.assign(type="view", value=np.nan), WeightPolicy())
    profiles = ContextProfiles.fit(data, ["device", "daypart"], prior=20.0)
    assert profiles.keys == ("device",)  # one daypart only: no time profile
    position = {item: i for i, item in enumerate(data.item_ids)}
    codes = profiles.encode(["mobile", "desktop", "tv"], 0)
    assert codes[2] == -1
    lift = profiles.log_lift(0)
    busy, rare = lift[position["busy_m"], codes[0]], lift[position["rare"], codes[0]]
    assert busy > rare > 0  # one mobile event moves the rare item a little
    assert lift[position["busy_d"], codes[0]] < 0


def test_request_labels_read_hour_daypart_and_weekday():
    assert request_label({"hour": "7", "daypart": "night"}, "daypart") == "morning"
    assert request_label({"daypart": "Evening"}, "daypart") == "evening"
    assert request_label({"hour": "25"}, "daypart") is None
    assert request_label({"day_of_week": "Saturday"}, "day_of_week") == "sat"
    assert request_label({"day_of_week": "someday"}, "day_of_week") is None
    assert request_label({"device": " mobile "}, "device") == "mobile"
    assert request_label(None, "device") is None
    # 1970-01-01 was a Thursday, 2024-01-01 a Monday
    assert weekday(np.array([0.0, 1_704_067_200.0])).tolist() == [3, 0]


def test_label_groups_split_a_persons_label_window_by_context():
    # p's label window: two items on mobile, one on desktop; q's: one on desktop
    rows = [("p", "a", 0.0, "mobile"), ("q", "a", 0.0, "mobile")]
    rows += [("p", "b", 1.0, "mobile"), ("p", "c", 2.0, "mobile"), ("p", "d", 3.0, "desktop")]
    rows += [("q", "d", 1.0, "desktop")]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "device"])
    frame["context"] = [{"device": d} for d in frame.pop("device")]
    data = build_dataset(frame.assign(type="view", value=np.nan), WeightPolicy())
    newer = data.timestamp >= 1.0
    from attune.models.hybrid import split_newest, subset_events

    _, labels = split_newest(data, 0.5, newer)
    window = subset_events(data, newer)
    codes = pd.Index(["mobile", "desktop"]).get_indexer(window.segment_values("context.device"))
    users = np.array([0, 1])
    groups = label_groups(users, labels, window, codes[:, None], per_user=3)
    items = [
        sorted(str(data.item_ids[i]) for i in groups.labels[g].indices)
        for g in range(len(groups.row))
    ]
    assert groups.row.tolist() == [0, 0, 1] and groups.codes[:, 0].tolist() == [0, 1, 1]
    assert items == [["b", "c"], ["d"], ["d"]]
    # one group each: the context with the most label events
    groups = label_groups(users, labels, window, codes[:, None], per_user=1)
    assert groups.row.tolist() == [0, 1] and groups.codes[:, 0].tolist() == [0, 1]
