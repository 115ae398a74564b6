"""Robustness variants: the shared MovieLens sets reshaped into other kinds of data.

Attune is judged on data it has not seen: play counts, purchases, ratings; dense and
very sparse; some without meaningful timestamps, some without item metadata. Each
variant here derives one such kind from the shared data, deterministically (seed 0), so
``benchmarks/accuracy.py --robustness`` can run Attune and the tuned peers on it (and
``--draws N`` on N instances of a random variant, seeds 0 to N - 1).

A variant's frame has columns user_id, item_id, timestamp, value (strings for ids);
``event_type`` is the type Attune imports its rows as, ``with_items`` whether the
catalog (titles, genres) is imported, ``valued`` whether the value column means
something, in which case peers may also use it (binary or log1p weights, by validation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEED = 0
CONSTANT_TIME = 1_000_000_000
"""The one timestamp of every row when time is withheld (2001-09-09)."""


@dataclass(frozen=True)
class Variant:
    name: str
    base: str
    description: str
    transform: Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]
    event_type: str = "view"
    with_items: bool = True
    valued: bool = False


def _no_time(frame: pd.DataFrame, _rng: np.random.Generator) -> pd.DataFrame:
    """Every row at one instant: order within a person carries no meaning. (Under
    PROTOCOL.md's split, ties go by item id, so each person's test rows are their items
    with the highest ids: a quirk of the split more than of the data.)"""
    return frame.assign(timestamp=str(CONSTANT_TIME))


def _shuffled_time(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each person's timestamps shuffled among their own rows: times that exist (an import
    date, a batch time) but say nothing about order, so test rows are a random fifth."""
    shuffled = frame["timestamp"].to_numpy().copy()
    for rows in frame.groupby("user_id", sort=False).indices.values():
        shuffled[rows] = shuffled[rng.permutation(rows)]
    return frame.assign(timestamp=shuffled)


def _daily(frame: pd.DataFrame, _rng: np.random.Generator) -> pd.DataFrame:
    """Timestamps cut to the day (midnight UTC), as data that keeps only dates has them:
    order between days holds, within a day it is lost (the split breaks those ties by
    item id)."""
    seconds = frame["timestamp"].astype("int64")
    return frame.assign(timestamp=(seconds - seconds % 86_400).astype(str))


def _unchanged(frame: pd.DataFrame, _rng: np.random.Generator) -> pd.DataFrame:
    return frame


def _purchases(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A random 15% of rows; value = quantity, 1 + Poisson(rating / 4), so liked items
    are bought in somewhat larger amounts."""
    keep = rng.random(len(frame)) < 0.15
    part = frame.loc[keep].copy()
    rating = part["value"].astype(float).to_numpy()
    part["value"] = (1 + rng.poisson(rating / 4.0)).astype(float)
    return part.reset_index(drop=True)


def _play_counts(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """value = a heavy-tailed play count: log-normal around the rating, scaled by a
    per-person activity level (some people play everything a lot)."""
    users = frame["user_id"].to_numpy()
    codes, uniques = pd.factorize(users)
    activity = rng.lognormal(0.0, 1.0, size=len(uniques))[codes]
    rating = frame["value"].astype(float).to_numpy()
    plays = np.ceil(activity * np.exp(rng.normal(0.6 * rating - 1.0, 1.0)))
    return frame.assign(value=np.maximum(plays, 1.0))


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "ml-100k/no-time",
            "ml-100k",
            "ML-100K, every timestamp equal (no meaningful order)",
            _no_time,
        ),
        Variant(
            "ml-100k/shuffled-time",
            "ml-100k",
            "ML-100K, each person's timestamps shuffled among their rows (no meaningful order)",
            _shuffled_time,
        ),
        Variant(
            "ml-latest-small/daily",
            "ml-latest-small",
            "ml-latest-small with timestamps cut to the day (order within a day lost)",
            _daily,
        ),
        Variant(
            "ml-latest-small/no-items",
            "ml-latest-small",
            "ml-latest-small without items.csv (no titles or genres)",
            _unchanged,
            with_items=False,
        ),
        Variant(
            "ml-latest-small/purchases",
            "ml-latest-small",
            "ml-latest-small, a random 15% of rows as purchases with a quantity (very sparse)",
            _purchases,
            event_type="purchase",
            valued=True,
        ),
        Variant(
            "ml-100k/play-counts",
            "ml-100k",
            "ML-100K with a heavy-tailed play count as value, imported as `view`",
            _play_counts,
            valued=True,
        ),
    )
}


def derive(variant: Variant, frame: pd.DataFrame, seed: int = SEED) -> pd.DataFrame:
    """The variant's rows from its base frame (columns user_id, item_id, timestamp, value);
    another ``seed`` draws another instance of a random variant (e.g. another 15% of rows
    as purchases)."""
    return variant.transform(frame, np.random.default_rng(seed))


def untried_shares(frame: pd.DataFrame) -> tuple[float, float]:
    """Share of TEST rows on items with no TRAIN row, and of VALID rows on items with no
    TRAIN' row, under PROTOCOL.md's split (the reference ``split.py``): how much of each
    held-out window only a model that ranks never-seen items could find."""
    from split import temporal_user_split  # the reference split, beside PROTOCOL.md

    train, test = temporal_user_split(frame)
    inner, valid = temporal_user_split(train)
    return (
        float((~test["item_id"].isin(set(train["item_id"]))).mean()),
        float((~valid["item_id"].isin(set(inner["item_id"]))).mean()),
    )


def main() -> None:
    """Print each variant's untried shares (``python benchmarks/variants.py``)."""
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent.parent / "shared" / "protocol")]
    from accuracy import load

    print("| data | TEST rows on items not in TRAIN | VALID rows on items not in TRAIN' |")
    print("|---|---:|---:|")
    for name in ["ml-100k", "ml-latest-small", *VARIANTS]:
        variant = VARIANTS.get(name)
        frame, _ = load(variant.base if variant else name)
        if variant:
            frame = derive(variant, frame)
        test_share, valid_share = untried_shares(frame)
        print(f"| {name} | {test_share:.1%} | {valid_share:.1%} |")


if __name__ == "__main__":
    main()
