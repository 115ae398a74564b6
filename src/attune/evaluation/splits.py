"""Train/test splits of an interaction frame (columns user_id, item_id, timestamp, ...)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd


def _held_out_count(sizes: np.ndarray, fraction: Fraction) -> np.ndarray:
    """round-half-up(size × fraction), at least one; exact integer arithmetic."""
    p, q = fraction.numerator, fraction.denominator
    return np.maximum((2 * sizes * p + q) // (2 * q), 1)


def temporal_user_split(
    frame: pd.DataFrame,
    test_fraction: Fraction | float = Fraction(1, 5),
    keep_order: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the newest ``test_fraction`` of rows (by timestamp, then item id) is test.

    Every user keeps at least one test row, so a user with one row is all test.

    Args:
        keep_order: return each half's rows in the order they have in ``frame`` (the
            arrival order training and serving use for equal timestamps) rather than
            sorted by (user, timestamp, item id). Which rows are test is the same either
            way; tuning validates with this, so a tie order the deployed model never sees
            cannot leak into the histories it is validated on.
    """
    fraction = Fraction(test_fraction).limit_denominator(1_000)
    users = frame["user_id"].astype(str).to_numpy()
    items = frame["item_id"].astype(str).to_numpy()
    times = frame["timestamp"].to_numpy(dtype=np.float64)
    order = np.lexsort((items, times, users))
    ordered = frame.iloc[order].reset_index(drop=True)
    grouped = ordered.groupby(ordered["user_id"].astype(str), sort=False)
    position = grouped.cumcount().to_numpy()
    size = grouped["user_id"].transform("size").to_numpy()
    is_test = position >= size - _held_out_count(size, fraction)
    if keep_order:
        in_frame = np.empty(len(frame), dtype=bool)
        in_frame[order] = is_test
        return (
            frame.loc[~in_frame].reset_index(drop=True),
            frame.loc[in_frame].reset_index(drop=True),
        )
    return ordered[~is_test].reset_index(drop=True), ordered[is_test].reset_index(drop=True)


def global_temporal_split(
    frame: pd.DataFrame, test_fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One cut time for everyone: the newest ``test_fraction`` of all rows is test."""
    cut = float(np.quantile(frame["timestamp"].to_numpy(dtype=np.float64), 1.0 - test_fraction))
    newer = frame["timestamp"].to_numpy(dtype=np.float64) > cut
    return frame[~newer].reset_index(drop=True), frame[newer].reset_index(drop=True)


def leave_last_one_out(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's newest row is test (users with a single row keep it in train)."""
    # ties between equal timestamps break by item id as text, as in temporal_user_split
    order = np.lexsort(
        (
            frame["item_id"].astype(str).to_numpy(),
            frame["timestamp"].to_numpy(dtype=np.float64),
            frame["user_id"].astype(str).to_numpy(),
        )
    )
    ordered = frame.iloc[order]
    grouped = ordered.groupby(ordered["user_id"].astype(str), sort=False)
    is_last = grouped.cumcount(ascending=False).to_numpy() == 0
    has_more = grouped["user_id"].transform("size").to_numpy() > 1
    test_mask = is_last & has_more
    return ordered[~test_mask].reset_index(drop=True), ordered[test_mask].reset_index(drop=True)
