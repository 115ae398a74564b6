"""Item and user aggregates, and category affinity, on a tiny hand-made dataset.

Two people, four items (``d`` is known only from the catalog), times in whole UTC
hours after a midnight, so every age and time-of-day bucket can be worked out by hand:

    u0: a (day 0, 01h), b (day 10, 07h), a (day 20, 13h)
    u1: a (day 18, 19h), c (day 20, 20h)   <- the newest event: the reference time
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.features.aggregates import (
    category_affinity,
    category_matrix,
    item_aggregates,
    mainstreamness,
    user_aggregates,
)
from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset

DAY, HOUR = 86_400.0, 3_600.0
MIDNIGHT = 1_699_920_000.0  # 2023-11-14 00:00 UTC
REFERENCE_DAYS = 20 + 20 / 24


def _at(day: int, hour: int) -> float:
    return MIDNIGHT + day * DAY + hour * HOUR


def _age(day: int, hour: int) -> float:
    return REFERENCE_DAYS - (day + hour / 24)


def dataset(with_catalog: bool = True) -> InteractionDataset:
    rows = [
        ("u0", "a", _at(0, 1)),
        ("u0", "b", _at(10, 7)),
        ("u0", "a", _at(20, 13)),
        ("u1", "a", _at(18, 19)),
        ("u1", "c", _at(20, 20)),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(
        type="view", value=np.nan
    )
    catalog = pd.DataFrame(
        {"item_id": ["a", "b", "c", "d"], "categories": [["x", "y"], "x", ["z", "z"], None]}
    )
    return build_dataset(frame, WeightPolicy(), catalog if with_catalog else None)


def test_item_aggregates_known_values():
    data = dataset()
    assert list(data.item_ids) == ["a", "b", "c", "d"]
    items = item_aggregates(data)
    a_ages = np.array([_age(0, 1), _age(20, 13), _age(18, 19)])
    np.testing.assert_allclose(items.log_count, np.log1p([3, 1, 1, 0]))
    np.testing.assert_allclose(items.log_users, np.log1p([2, 1, 1, 0]))
    np.testing.assert_allclose(
        items.log_popularity_7d[:3],
        np.log1p([np.exp2(-a_ages / 7).sum(), np.exp2(-_age(10, 7) / 7), 1.0]),
    )
    np.testing.assert_allclose(items.log_popularity_30d[2], np.log1p(1.0))
    np.testing.assert_allclose(items.days_since_first[:3], [_age(0, 1), _age(10, 7), 0.0])
    np.testing.assert_allclose(items.days_since_last[:3], [_age(20, 13), _age(10, 7), 0.0])
    np.testing.assert_allclose(items.mean_age_days[:3], [a_ages.mean(), _age(10, 7), 0.0])
    np.testing.assert_allclose(items.trend_7d, [2 / 3, 0.0, 1.0, 0.0])
    # the catalog-only item has no ages at all, and no popularity
    assert np.isnan([items.days_since_first[3], items.days_since_last[3]]).all()
    assert np.isnan(items.mean_age_days[3]) and items.log_popularity_7d[3] == 0
    assert items.matrix().shape == (4, 8) and items.matrix().dtype == np.float32


def test_user_aggregates_known_values():
    data = dataset()
    assert list(data.user_ids) == ["u0", "u1"]
    users = user_aggregates(data)
    np.testing.assert_allclose(users.log_count, np.log1p([3, 2]))
    np.testing.assert_allclose(users.log_items, np.log1p([2, 2]))
    np.testing.assert_allclose(users.days_since_last, [_age(20, 13), 0.0])
    # both had the thrice-seen a and one once-seen item
    np.testing.assert_allclose(users.mainstreamness, [(np.log1p(3) + np.log1p(1)) / 2] * 2)
    np.testing.assert_allclose(
        users.time_of_day, [[1 / 3, 1 / 3, 1 / 3, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )


def test_mainstreamness_of_an_empty_row_is_zero():
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(mainstreamness(matrix, np.array([1.0, 5.0, 3.0])), [2.0, 0.0])


def test_category_matrix_from_lists_single_labels_and_gaps():
    data = dataset()
    incidence, labels = category_matrix(data.item_features, data.n_items)
    assert labels.tolist() == ["x", "y", "z"]
    np.testing.assert_array_equal(incidence.toarray(), [[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    none, no_labels = category_matrix(None, 4)
    assert none.shape == (4, 0) and len(no_labels) == 0


def test_category_affinity_is_the_mean_share_of_the_candidates_categories():
    data = dataset()
    incidence, _ = category_matrix(data.item_features, data.n_items)
    history = data.matrix > 0  # u0: a, b; u1: a, c
    rows = np.array([0, 0, 0, 0, 1, 1])
    items = np.array([0, 1, 2, 3, 1, 3])
    got = category_affinity(history, incidence, rows, items)
    # u0: x on 2/2 of the history, y on 1/2, z on none
    np.testing.assert_allclose(got, [0.75, 1.0, 0.0, 0.0, 0.5, 0.0])
    weighted = sp.csr_matrix(np.array([[3.0, 1.0, 0.0, 0.0]]))
    assert category_affinity(weighted, incidence, np.array([0]), np.array([0]))[0] == (
        pytest.approx((1.0 + 0.75) / 2)
    )


def test_category_affinity_without_a_catalog_is_zero():
    data = dataset(with_catalog=False)
    incidence, _ = category_matrix(data.item_features, data.n_items)
    got = category_affinity(data.matrix, incidence, np.array([0, 1]), np.array([1, 2]))
    np.testing.assert_array_equal(got, [0.0, 0.0])
