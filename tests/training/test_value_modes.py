"""How a value counts (rating, play count, quantity) is chosen by validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from attune.features.interactions import WeightPolicy
from attune.ingest.service import IngestService
from attune.training.pipeline import train
from attune.training.value_modes import choose_value_modes, valued_types

START = 1_700_000_000


def plays_world(n_people: int = 160, seed: int = 0) -> pd.DataFrame:
    """Play counts where the value is the signal: each person first sampled 8 random
    tracks once (1 play each), then played 8 tracks of their own genre 10-50 times.
    Counting every event alike mixes the two; weighting by log(plays) does not."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_people):
        genre = np.arange(30) + 30 * (p % 2)
        sampled = rng.choice(60, 8, replace=False)
        loved = rng.choice(genre, 8, replace=False)
        for t, (track, plays) in enumerate(
            [(s, 1.0) for s in sampled] + [(t, float(rng.integers(10, 50))) for t in loved]
        ):
            rows.append((f"p{p}", f"t{track}", "view", plays, float(START + 3_600 * p + t)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])


def test_valued_types_are_those_whose_events_carry_varying_values():
    frame = pd.DataFrame(
        {
            "user_id": list("abcdef"),
            "item_id": list("xyzxyz"),
            "type": ["view", "view", "rating", "rating", "purchase", "purchase"],
            "value": [np.nan, np.nan, 1.0, 5.0, 2.0, 2.0],
            "timestamp": np.arange(6.0),
        }
    )
    assert valued_types(frame) == {"rating": 5.0}, "views carry no value, purchases a constant"


def test_validation_weighs_play_counts_when_they_carry_the_signal():
    frame = plays_world()
    _, policy, evidence = choose_value_modes(frame, WeightPolicy())
    assert set(evidence["view"]) == {"ignore", "log1p"}, "no linear for values up to 50"
    assert policy.value_modes["view"] == "log1p", evidence
    assert evidence["view"]["log1p"] > evidence["view"]["ignore"]


def test_meaningless_values_keep_the_configured_mode():
    frame = plays_world()
    frame["value"] = np.random.default_rng(1).integers(1, 5, len(frame)).astype(float)
    _, policy, evidence = choose_value_modes(frame, WeightPolicy())
    assert "linear" in evidence["view"]
    assert policy.value_modes.get("view", "ignore") == "ignore", evidence


def test_train_serves_with_the_value_mode_it_chose(settings, sqlite_stores):
    events = [{**row, "timestamp": row["timestamp"]} for row in plays_world().to_dict("records")]
    IngestService(settings, sqlite_stores).ingest_events(events)
    version = train(settings, sqlite_stores)
    assert version.metrics["value_modes"]["view"] == "log1p"
    evidence = version.metrics["validation"]["value_modes"]["view"]
    assert evidence["log1p"] > evidence["ignore"]
    folder = sqlite_stores.artifacts.open(version.artifact_uri)
    assert json.loads((folder / "serving.json").read_text())["value_modes"]["view"] == "log1p"
    # a refit of that version (after an erasure, say) keeps counting values the same way
    again = train(
        settings, sqlite_stores, algorithm=version.algorithm, params=version.params, like=version
    )
    assert again.metrics["value_modes"]["view"] == "log1p"
    folder = sqlite_stores.artifacts.open(again.artifact_uri)
    assert json.loads((folder / "serving.json").read_text())["value_modes"]["view"] == "log1p"
