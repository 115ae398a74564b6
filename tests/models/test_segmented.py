"""Per-segment popularity and trending: each region gets what its own people like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attune.errors import ValidationError
from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model, load_model

NOW = 1_700_000_000.0
DAY = 86_400.0
SEGMENTS = ["traits.region", "context.device"]


def two_regions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """25 EU people who love the "e" items, 40 US people who love the "u" items, and 3
    people in "XS", a region too small to learn. Everyone also saw "common". EU people
    browse on mobile, US people on desktop, except that EU people use desktop for "e2"."""
    events, users = [], []
    for region, count, liked in (("EU", 25, "e"), ("US", 40, "u"), ("XS", 3, "e")):
        for u in range(count):
            person = f"{region}-{u}"
            users.append({"user_id": person, "traits": {"region": region, "age": 30}})
            for k in range(3):
                device = "desktop" if region == "US" or k == 2 else "mobile"
                events.append((person, f"{liked}{k}", NOW - (u % 25 + k) * DAY, {"device": device}))
            events.append((person, "common", NOW - 60 * DAY, None))
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp", "context"])
    frame = frame.assign(type="view", value=np.nan)
    return frame, pd.DataFrame(users)


@pytest.fixture(scope="module")
def dataset():
    frame, users = two_regions()
    return build_dataset(frame, WeightPolicy(), users=users)


def _top(model, scores: np.ndarray, n: int = 3) -> list[str]:
    return [str(model.item_ids[i]) for i in np.argsort(-scores, kind="stable")[:n]]


@pytest.mark.parametrize("name", ["popularity", "trending"])
def test_each_region_ranks_its_own_favourites_first(dataset, name):
    model = create_model(name, {"segment_by": SEGMENTS}).fit(dataset)
    assert _top(model, model.item_scores, 1)[0].startswith("u"), "the US is larger"
    europe = model.scores_for_segment({"traits.region": "EU"})
    america = model.scores_for_segment({"traits.region": "US"})
    assert europe is not None and america is not None
    assert europe.shape == (model.n_items,) and europe.dtype == np.float32
    assert set(_top(model, europe)) == {"e0", "e1", "e2"}
    assert set(_top(model, america)) == {"u0", "u1", "u2"}


@pytest.mark.parametrize("name", ["popularity", "trending"])
def test_unknown_or_tiny_segments_give_none(dataset, name):
    model = create_model(name, {"segment_by": SEGMENTS}).fit(dataset)
    assert model.scores_for_segment({"traits.region": "Mars"}) is None
    assert model.scores_for_segment({"traits.region": "XS"}) is None, "3 people < 20"
    assert model.scores_for_segment({}) is None
    assert model.scores_for_segment({"context.locale": "fr"}) is None, "not a segment key"
    plain = create_model(name).fit(dataset)
    assert plain.scores_for_segment({"traits.region": "EU"}) is None


def test_the_most_specific_segment_wins(dataset):
    model = create_model("popularity", {"segment_by": SEGMENTS, "min_segment_people": 5}).fit(
        dataset
    )
    both = model.scores_for_segment({"traits.region": "EU", "context.device": "desktop"})
    assert _top(model, both, 1) == ["e2"], "EU on desktop: only e2 is seen there"
    region = model.scores_for_segment({"traits.region": "EU"})
    assert set(_top(model, region)) == {"e0", "e1", "e2"}
    # an unknown device falls back to the region alone, an unknown region to the device
    fallback = model.scores_for_segment({"traits.region": "EU", "context.device": "tv"})
    np.testing.assert_array_equal(fallback, region)
    mobile = model.scores_for_segment({"traits.region": "Mars", "context.device": "mobile"})
    assert set(_top(model, mobile, 2)) <= {"e0", "e1"}


def test_values_are_compared_as_labels(dataset):
    model = create_model("popularity", {"segment_by": ["traits.age"]}).fit(dataset)
    as_number = model.scores_for_segment({"traits.age": 30})
    as_text = model.scores_for_segment({"traits.age": "30"})
    as_float = model.scores_for_segment({"traits.age": 30.0})
    assert as_number is not None
    np.testing.assert_array_equal(as_number, as_text)
    np.testing.assert_array_equal(as_number, as_float)


def test_a_small_segment_leans_on_the_global_scores(dataset):
    strong = create_model("popularity", {"segment_by": SEGMENTS, "segment_prior_people": 0})
    weak = create_model("popularity", {"segment_by": SEGMENTS, "segment_prior_people": 1e6})
    strong.fit(dataset)
    weak.fit(dataset)
    u0 = int(np.flatnonzero(strong.item_ids == "u0")[0])
    assert strong.scores_for_segment({"traits.region": "EU"})[u0] == 0.0
    leaning = weak.scores_for_segment({"traits.region": "EU"})
    assert _top(weak, leaning, 1)[0].startswith("u"), "the global favourite leads"
    overall = weak.item_scores / weak.item_scores.sum()
    np.testing.assert_allclose(leaning, overall, atol=1e-4)


@pytest.mark.parametrize("name", ["popularity", "trending"])
def test_segments_survive_save_and_load(dataset, name, tmp_path: Path):
    model = create_model(name, {"segment_by": SEGMENTS}).fit(dataset)
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as arrays:
        assert "state_segment_labels" in arrays.files
    loaded = load_model(tmp_path / "m")
    assert loaded.config.segment_by == SEGMENTS
    for values in ({"traits.region": "EU"}, {"context.device": "desktop"}):
        np.testing.assert_array_equal(
            loaded.scores_for_segment(values), model.scores_for_segment(values)
        )
    assert loaded.scores_for_segment({"traits.region": "Mars"}) is None


def test_without_traits_or_context_there_are_no_segments():
    frame, _ = two_regions()
    data = build_dataset(frame.drop(columns="context"), WeightPolicy())
    model = create_model("popularity", {"segment_by": SEGMENTS}).fit(data)
    assert model.scores_for_segment({"traits.region": "EU", "context.device": "mobile"}) is None


@pytest.mark.parametrize(
    "keys",
    [["region"], ["profile.region"], ["traits."], ["traits.a", "traits.a"], ["context.a"] * 5],
)
def test_bad_segment_keys_are_refused(keys):
    with pytest.raises(ValidationError, match="segment"):
        create_model("popularity", {"segment_by": keys})
