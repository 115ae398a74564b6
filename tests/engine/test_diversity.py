"""MMR, the per-category cap and calibrated re-ranking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from attune.engine.diversity import calibrate, cap_per_category, mmr

A, B, C = frozenset({"A"}), frozenset({"B"}), frozenset({"C"})


def test_mmr_level_zero_keeps_relevance_order() -> None:
    assert mmr([3, 2, 1], [A, A, B], 3, 0.0) == [0, 1, 2]


def test_mmr_trades_relevance_for_variety() -> None:
    relevance = [1.0, 0.95, 0.9, 0.5]
    cats = [A, A, A, B]
    assert mmr(relevance, cats, 2, 0.0) == [0, 1]
    assert mmr(relevance, cats, 2, 0.6) == [0, 3]


def test_cap_per_category_holds_back_then_fills() -> None:
    order = [0, 1, 2, 3]
    cats = [A, A, A, B]
    assert cap_per_category(order, cats, 2, 1) == [0, 3]
    # too few categories to honour the cap: the list stays n long
    assert cap_per_category(order, cats, 3, 1) == [0, 3, 1]


def test_calibration_follows_the_history_proportions() -> None:
    relevance = [1.0, 0.99, 0.98, 0.97, 0.2, 0.1]
    cats = [A, A, A, A, B, B]
    picked = calibrate(relevance, cats, {"A": 1.0, "B": 1.0}, 4, 0.9)
    assert sorted(cats[i] for i in picked).count(B) == 2
    assert calibrate(relevance, cats, {"A": 1.0}, 4, 0.9) == [0, 1, 2, 3]


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=30),
    st.floats(0, 1),
    st.integers(1, 40),
)
def test_rerankers_return_distinct_valid_positions(relevance, level, n) -> None:
    cats = [(A, B, C, A | B)[i % 4] for i in range(len(relevance))]
    for picked in (
        mmr(relevance, cats, n, level),
        calibrate(relevance, cats, {"A": 2, "C": 1}, n, level),
        cap_per_category(list(range(len(relevance))), cats, n, 2),
    ):
        assert len(picked) == min(n, len(relevance))
        assert len(set(picked)) == len(picked)
        assert all(0 <= i < len(relevance) for i in picked)


def test_the_cap_reaches_past_a_head_of_one_category() -> None:
    """Thirty items of one category lead the ranking: a cap of one must take the rest of
    the first five from further down (held items once came first, breaking the cap)."""
    cats = [frozenset({"A"})] * 30 + [frozenset({f"C{k}"}) for k in range(10)]
    order = cap_per_category(range(40), cats, 40, 1, first=5)
    assert order[:5] == [0, 30, 31, 32, 33]
    assert sorted(order) == list(range(40)), "nothing is lost, only moved down"
