from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("torch")

from attune.features.interactions import (
    History,
    InteractionDataset,
    WeightPolicy,
    build_dataset,
)
from attune.models.registry import create_model, load_model
from attune.models.sasrec import history_sequences, training_windows
from tests.models.contract import RecommenderContract

# small and single-threaded, so a fit takes well under a second and gives the same
# weights on every run; the time cap is far away so it never cuts a run short
FAST = {
    "hidden": 16,
    "heads": 1,
    "blocks": 1,
    "max_length": 10,
    "dropout": 0.2,
    "attention_dropout": 0.2,
    "learning_rate": 0.01,
    "batch_size": 64,
    "num_threads": 1,
    "max_train_seconds": 600.0,
    "seed": 42,
}


class TestSASRec(RecommenderContract):
    """The checkerboard's held-out items are nobody's next step after their last item, so
    the model learns the next 10 items at each position (``horizon``): each person's
    context then points at their side of the board, not only at one next item."""

    model_name = "sasrec"
    params = {**FAST, "epochs": 20, "horizon": 10}


def chains(n_users: int = 60, n_items: int = 14, length: int = 6) -> InteractionDataset:
    """Everyone walks the items in order: item k is always followed by item k + 1."""
    rows = []
    for u in range(n_users):
        start = u % (n_items - length + 1)
        for step in range(length):
            item = start + step
            rows.append((f"u{u:02d}", f"i{item:02d}", "view", np.nan, 1_700_000_000.0 + step))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    return build_dataset(frame, WeightPolicy())


def ordered(items_oldest_first: list[list[int]], n_items: int) -> History:
    """Histories with a real order: the last item listed has rank 1 (the newest)."""
    rows, cols, ranks = [], [], []
    for r, items in enumerate(items_oldest_first):
        for position, item in enumerate(items):
            rows.append(r)
            cols.append(item)
            ranks.append(len(items) - position)
    shape = (len(items_oldest_first), n_items)
    weights = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    rank_matrix = sp.csr_matrix((np.array(ranks, np.float32), (rows, cols)), shape=shape)
    return History(weights, rank_matrix)


@pytest.fixture(scope="module")
def chain_model():
    return create_model("sasrec", {**FAST, "epochs": 60}).fit(chains())


def test_order_matters(chain_model):
    # item index = the number in the id, since ids sort like the numbers here
    index, _ = chain_model.recommend(ordered([[3, 4, 5], [7, 2], [2, 7]], 14), n=1)
    assert index[:, 0].tolist() == [6, 3, 8]


def test_unordered_histories_are_read_by_item_index(chain_model):
    plain = chain_model.recommend(sp.csr_matrix(ordered([[3, 4, 5]], 14).weights), n=3)
    in_order = chain_model.recommend(ordered([[3, 4, 5]], 14), n=3)
    np.testing.assert_array_equal(plain[0], in_order[0])


def test_sequences_from_ranks_keep_the_newest_oldest_first():
    history = ordered([[5, 1, 3, 0], [], [2]], 8)
    sequences = history_sequences(history, max_length=3)
    # tokens are item index + 1, padding 0 trails
    assert sequences.tolist() == [[2, 4, 1], [0, 0, 0], [3, 0, 0]]


def test_training_windows_cover_every_step_with_what_follows():
    data = chains(n_users=1, n_items=7, length=7)  # one person: 0 → 1 → … → 6
    inputs, targets = training_windows(data, max_length=4, horizon=2)
    assert inputs.tolist() == [[3, 4, 5, 6], [1, 2, 0, 0]]
    assert targets[0].tolist() == [[4, 5], [5, 6], [6, 7], [7, 0]]
    assert targets[1, :2].tolist() == [[2, 3], [3, 4]]


def test_save_load_gives_the_same_scores(chain_model, tmp_path: Path):
    chain_model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as arrays:
        assert "state_n_items" in arrays.files
        assert any(name.startswith("state_net.") for name in arrays.files)
    loaded = load_model(tmp_path / "m")
    history = ordered([[3, 4, 5], [7, 2], []], 14)
    np.testing.assert_array_equal(
        chain_model.score(history, np.full(3, -1)), loaded.score(history, np.full(3, -1))
    )
    assert not loaded.score(history, np.full(3, -1))[2].any(), "no history, no scores"


def test_similar_items_never_return_the_item(chain_model):
    index, scores = chain_model.similar_items(np.array([0, 5]), n=3)
    assert index.shape == (2, 3)
    assert 0 not in index[0] and 5 not in index[1]
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_time_cap_stops_training():
    model = create_model("sasrec", {**FAST, "epochs": 1_000, "max_train_seconds": 1e-6})
    model.fit(chains())
    assert model.epochs_run == 0
    assert model.score(ordered([[1, 2]], 14), np.array([-1])).shape == (1, 14)


def test_importing_the_model_does_not_import_torch():
    code = (
        "import sys, attune, attune.models.registry, attune.models.sasrec; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
