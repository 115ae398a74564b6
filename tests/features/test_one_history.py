"""One person's history (a live request) is weighted exactly as in a batch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.features.interactions import HistoryEvent, WeightPolicy, history_matrix

POLICIES = [
    WeightPolicy(),
    WeightPolicy(
        type_weights={"view": 1.0, "purchase": 4.0, "dislike": -1.0},
        value_modes={"rating": "linear"},
        half_life_days=3.0,
    ),
]
EVENTS = st.builds(
    HistoryEvent,
    item_id=st.sampled_from([f"i{k}" for k in range(12)]),  # i10, i11: unknown to the model
    type=st.sampled_from(["view", "purchase", "rating", "dislike"]),
    value=st.sampled_from([None, 0.0, 2.0, 5.0]),
    timestamp=st.sampled_from([1.7e9, 1.7e9 + 3_600, 1.7e9 + 86_400, 1.7e9 + 7 * 86_400]),
)
POSITION = {f"i{k}": k for k in range(10)}


@settings(max_examples=300, deadline=None)
# up to 90 events: short histories are summed in a loop, long ones with numpy (64 apart)
@given(
    st.one_of(st.lists(EVENTS, max_size=15), st.lists(EVENTS, min_size=60, max_size=90)),
    st.sampled_from(POLICIES),
)
def test_one_history_equals_its_row_in_a_batch(events: list[HistoryEvent], policy) -> None:  # type: ignore[no-untyped-def]
    alone = history_matrix([events], POSITION, 10, policy)
    batch = history_matrix([[], events], POSITION, 10, policy)[np.array([1])]
    for mine, theirs in ((alone.weights, batch.weights), (alone.ranks, batch.ranks)):
        np.testing.assert_array_equal(mine.indices, theirs.indices)
        np.testing.assert_allclose(mine.toarray(), theirs.toarray(), rtol=1e-6)
    np.testing.assert_allclose(alone.day_parts, batch.day_parts)
    np.testing.assert_array_equal(alone.newest_time, batch.newest_time)
