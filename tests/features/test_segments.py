"""Segment statistics on a hand-made set of events."""

from __future__ import annotations

import numpy as np
import pytest

from attune.features.segments import (
    SegmentScores,
    check_segment_keys,
    learn_segments,
    segment_label,
    shrink_toward,
)

KEYS = ["traits.region", "context.device"]


def _learn(min_people: int = 1, per_person: str = "max") -> SegmentScores:
    # (person, item, region, device, value): p0 saw item 0 twice on mobile
    events = [
        (0, 0, "EU", "mobile", 1.0),
        (0, 0, "EU", "mobile", 3.0),
        (1, 1, "EU", "tv", 1.0),
        (2, 1, "US", None, 2.0),
    ]
    users, items, regions, devices, values = (
        np.array(column) for column in zip(*events, strict=True)
    )
    return learn_segments(
        KEYS,
        {"traits.region": regions.astype(object), "context.device": devices.astype(object)},
        users,
        items,
        2,
        {"value": values.astype(float)},
        min_people,
        per_person,
    )


def test_every_combination_of_keys_is_a_segment():
    table = _learn()
    found = {(int(c), str(label)) for c, label in zip(table.combos, table.labels, strict=True)}
    assert found == {
        (3, '["EU", "mobile"]'),
        (3, '["EU", "tv"]'),
        (1, '["EU"]'),
        (1, '["US"]'),
        (2, '["mobile"]'),
        (2, '["tv"]'),
    }, "a missing device puts the US event in no device segment"
    europe = table.lookup({"traits.region": "EU"})
    assert table.people[europe] == 2
    np.testing.assert_allclose(table.row("value", europe), [3.0, 1.0])


def test_a_person_counts_once_per_item_or_summed():
    summed = _learn(per_person="sum")
    mobile = summed.lookup({"context.device": "mobile"})
    assert summed.row("value", mobile)[0] == 4.0
    largest = _learn(per_person="max")
    assert largest.row("value", largest.lookup({"context.device": "mobile"}))[0] == 3.0


def test_small_segments_are_not_learnt():
    table = _learn(min_people=2)
    assert [str(label) for label in table.labels] == ['["EU"]']
    assert table.lookup({"traits.region": "US"}) is None


def test_arrays_round_trip():
    table = _learn()
    again = SegmentScores.from_arrays(table.to_arrays())
    assert again is not None and again.keys == KEYS
    values = {"traits.region": "EU", "context.device": "tv"}
    assert again.lookup(values) == table.lookup(values)
    np.testing.assert_array_equal(
        again.row("value", again.lookup(values)), table.row("value", table.lookup(values))
    )
    assert SegmentScores.from_arrays({"item_scores": np.zeros(2)}) is None


def test_labels_and_keys():
    assert [
        segment_label(v) for v in ("EU", " EU ", 3, 3.0, 2.5, True, None, "", float("nan"))
    ] == [
        "EU",
        "EU",
        "3",
        "3",
        "2.5",
        "true",
        None,
        None,
        None,
    ]
    assert check_segment_keys(["traits.region", "context.geo.country"]) == [
        "traits.region",
        "context.geo.country",
    ]
    with pytest.raises(ValueError, match="traits"):
        check_segment_keys(["user.region"])


def test_shrinking_leans_on_the_overall_shares_by_segment_size():
    segment, overall = np.array([4.0, 0.0]), np.array([1.0, 3.0])
    np.testing.assert_allclose(shrink_toward(segment, overall, 10, 0.0), [1.0, 0.0])
    np.testing.assert_allclose(shrink_toward(segment, overall, 10, 10.0), [0.625, 0.375])
    np.testing.assert_allclose(shrink_toward(np.zeros(2), overall, 10, 1.0), [0.25, 0.75])
    assert shrink_toward(np.zeros(2), np.zeros(2), 10, 1.0).tolist() == [0.0, 0.0]
