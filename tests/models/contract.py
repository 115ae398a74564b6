"""The contract every recommender honours, as a mixin: subclass it, set the model name.

The synthetic world is a checkerboard: even users like even items and odd users odd
items, each having seen most but not all of their side. A personalised model must
offer each user the unseen items of their own side first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.models.base import Recommender
from attune.models.registry import create_model, load_model

N_USERS, N_ITEMS = 40, 20


def checkerboard() -> InteractionDataset:
    rows = []
    for u in range(N_USERS):
        for i in range(N_ITEMS):
            # same parity, and leave out two items per user so there is something to find
            if u % 2 == i % 2 and (u // 2 + i // 2) % 5 not in (0, 1):
                rows.append((f"u{u:02d}", f"i{i:02d}", "view", np.nan, 1_700_000_000.0 + u + i))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    return build_dataset(frame, WeightPolicy())


class RecommenderContract:
    model_name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    personalised: ClassVar[bool] = True

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> InteractionDataset:
        return checkerboard()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, data: InteractionDataset) -> Recommender:
        return create_model(cls.model_name, cls.params).fit(data)

    def test_item_space_is_the_datasets(self, model, data):
        assert list(model.item_ids) == list(data.item_ids)

    def test_known_answers_on_the_checkerboard(self, model, data):
        index, scores = model.recommend(data.matrix, n=2)
        seen = data.matrix.toarray() > 0
        for u in range(data.n_users):
            got = [i for i in index[u] if i >= 0]
            assert got, f"no recommendation for {data.user_ids[u]}"
            assert not seen[u, got].any(), "an already seen item came back"
            assert np.all(np.diff(scores[u][: len(got)]) <= 0), "not sorted best first"
            if self.personalised:
                parity = int(data.user_ids[u][1:]) % 2
                assert {int(data.item_ids[i][1:]) % 2 for i in got} == {parity}

    def test_batch_agrees_with_single_queries(self, model, data):
        batch_index, batch_scores = model.recommend(data.matrix, n=5)
        for u in (0, 1, 7, data.n_users - 1):
            index, scores = model.recommend(data.matrix[u], n=5)
            same_up_to_float_ties(index[0], scores[0], batch_index[u], batch_scores[u])

    def test_exclusions_and_candidates(self, model, data):
        first, _ = model.recommend(data.matrix[:1], n=1)
        banned = sp.csr_matrix(([1.0], ([0], [first[0, 0]])), shape=(1, data.n_items))
        index, _ = model.recommend(data.matrix[:1], n=3, exclude=banned)
        assert first[0, 0] not in index[0]
        candidates = np.array([3, 5])
        index, _ = model.recommend(
            data.matrix[:1], n=3, candidates=candidates, exclude_history=False
        )
        assert set(index[0][index[0] >= 0].tolist()) <= {3, 5}
        assert index[0][2] == -1, "only two candidates, so the third slot stays empty"

    def test_unknown_user_with_no_history(self, model, data):
        empty = sp.csr_matrix((1, data.n_items), dtype=np.float32)
        index, scores = model.recommend(empty, n=3)
        assert index.shape == (1, 3)
        assert np.all((index[0] >= 0) == np.isfinite(scores[0]))

    def test_save_load_round_trip_without_pickle(self, model, data, tmp_path: Path):
        model.save(tmp_path / "m")
        with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as arrays:
            assert "item_ids" in arrays.files
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.config == model.config
        before = model.recommend(data.matrix, n=5)
        after = loaded.recommend(data.matrix, n=5)
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_allclose(before[1], after[1], rtol=1e-6)


def same_up_to_float_ties(
    index: np.ndarray, scores: np.ndarray, other_index: np.ndarray, other_scores: np.ndarray
) -> None:
    """Two top-n lists of one query agree: the same scores, and the same items except
    where scores tie within float error. A batch and a single query may round a dot
    product differently in the last bit (BLAS picks its kernel by shape and CPU), which
    can swap items the model scores equally, or change which of them the cut keeps."""
    np.testing.assert_allclose(scores, other_scores, rtol=1e-5)
    cut = min(scores.min(), other_scores.min())
    margin = 1e-5 * max(abs(cut), 1e-12)
    clear = {int(i) for i, s in zip(index, scores, strict=True) if s > cut + margin}
    other = {int(i) for i, s in zip(other_index, other_scores, strict=True) if s > cut + margin}
    assert clear == other
    position = {int(i): k for k, i in enumerate(index)}
    for k, (a, b) in enumerate(zip(index, other_index, strict=True)):
        if a == b:
            continue
        if int(b) in position:  # swapped: only items scored alike
            assert abs(scores[k] - scores[position[int(b)]]) <= 1e-5 * abs(scores[k])
        else:  # cut differently: only among the items tied at the cut
            assert scores[k] <= cut + margin
