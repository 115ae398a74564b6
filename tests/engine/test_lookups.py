"""The engine's cheap lookups give exactly what the direct computation gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.engine.lookups import (
    dense_block,
    empty_history_ranking,
    first_allowed,
    ids_digest,
    placement_digest,
)
from attune.engine.placements import DEFAULT_PLACEMENT, PlacementConfig
from attune.features.interactions import WeightPolicy, build_dataset
from attune.models.registry import create_model


@pytest.mark.parametrize("seed", range(40))
def test_dense_block_is_the_fancy_indexed_block(seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = sp.random(60, 50, density=rng.uniform(0, 0.3), format="csr", random_state=seed)
    rows = rng.choice(60, size=rng.integers(0, 12), replace=rng.random() < 0.5)
    columns = rng.choice(50, size=rng.integers(0, 12), replace=False)
    expected = (
        matrix[rows][:, columns].toarray()
        if len(rows) and len(columns)
        else np.zeros((len(rows), len(columns)))
    )
    assert np.array_equal(dense_block(matrix, rows, columns), expected)


def test_dense_block_of_a_non_canonical_matrix_sums_repeated_entries() -> None:
    # two stored entries for (0, 1): scipy adds them; the fast path must not be taken
    matrix = sp.csr_matrix(
        (np.array([1.0, 2.0, 5.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 3)
    )
    assert not matrix.has_canonical_format
    block = dense_block(matrix, np.array([0, 1]), np.array([1, 0]))
    assert block.tolist() == [[3.0, 0.0], [0.0, 5.0]]


class Loaded:
    """What empty_history_ranking reads of a loaded model version."""

    def __init__(self, fallback: object) -> None:
        self.fallback = fallback


@pytest.fixture(scope="module")
def popularity():
    rng = np.random.default_rng(3)
    n = 4_000
    # few distinct counts, so many items tie: the order among equals must match too
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, 300, n)],
            "item_id": [f"i{i}" for i in rng.zipf(1.6, n) % 200],
            "type": "view",
            "value": np.nan,
            "timestamp": 1_700_000_000.0 + np.arange(n),
        }
    )
    return create_model("popularity", {}).fit(build_dataset(frame, WeightPolicy()))


@pytest.mark.parametrize("seed", range(20))
def test_first_allowed_is_the_model_list_over_the_allowed_items(popularity, seed: int) -> None:
    rng = np.random.default_rng(seed)
    allowed = rng.random(popularity.n_items) < rng.uniform(0.02, 1.0)
    n = int(rng.integers(1, 80))
    candidates = np.flatnonzero(allowed)
    query = sp.csr_matrix((1, popularity.n_items), dtype=np.float32)
    index, scores = popularity.recommend(query, min(n, len(candidates)), candidates=candidates)
    keep = (index[0] >= 0) & np.isfinite(scores[0])
    ranking = empty_history_ranking(Loaded(popularity), "fallback")  # type: ignore[arg-type]
    got_index, got_scores = first_allowed(ranking, allowed, n)
    assert got_index.tolist() == index[0][keep].tolist()
    assert got_scores.tolist() == scores[0][keep].tolist()


def test_the_ranking_is_computed_once_per_loaded_model(popularity) -> None:
    loaded = Loaded(popularity)
    first = empty_history_ranking(loaded, "fallback")  # type: ignore[arg-type]
    assert empty_history_ranking(loaded, "fallback") is first  # type: ignore[arg-type]
    # a new version (or a forgotten copy) is a new object: its own ranking
    assert empty_history_ranking(Loaded(popularity), "fallback") is not first  # type: ignore[arg-type]


def test_nothing_allowed_gives_an_empty_list(popularity) -> None:
    ranking = empty_history_ranking(Loaded(popularity), "fallback")  # type: ignore[arg-type]
    index, scores = first_allowed(ranking, np.zeros(popularity.n_items, dtype=bool), 10)
    assert len(index) == 0 and len(scores) == 0


def test_placement_digest_is_the_configuration_digest_per_object() -> None:
    assert placement_digest(DEFAULT_PLACEMENT) == DEFAULT_PLACEMENT.digest()
    other = PlacementConfig(n=5, diversity={"level": 0.3})
    assert placement_digest(other) == other.digest() != DEFAULT_PLACEMENT.digest()
    # an equal configuration read again (a new object) gets the same digest
    assert placement_digest(PlacementConfig(n=5, diversity={"level": 0.3})) == other.digest()


def test_an_id_set_digest_is_the_same_in_every_process() -> None:
    """Answer-cache keys carry it and other server processes read them: unlike hash()
    of a set of strings, it must not depend on the interpreter's string-hash salt."""
    import os
    import subprocess
    import sys

    code = (
        "from attune.engine.lookups import ids_digest;"
        "ids = frozenset(f'item-{k}' for k in range(50));"
        "print(ids_digest(ids), hash(ids))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for seed in ("1", "2")
    ]
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1] != outputs[1][1]  # what the key used before: per process
    assert ids_digest(frozenset({"a", "b"})) != ids_digest(frozenset({"a", "c"}))
