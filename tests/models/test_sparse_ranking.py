"""Ranking a neighbourhood model's sparse scores gives the lists dense ranking gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import attune.models.base as base
from attune.features.interactions import InteractionDataset, WeightPolicy, build_dataset
from attune.models.base import sparse_top_n


@st.composite
def ranking_cases(
    draw: st.DrawFn,
) -> tuple[sp.csr_matrix, int, list[sp.csr_matrix], Any]:
    n_rows = draw(st.integers(1, 5))
    n_cols = draw(st.integers(1, 30))
    density = draw(st.floats(0.0, 0.9))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    values = rng.integers(-2, 4, size=(n_rows, n_cols)).astype(np.float32)  # ties, zeros, < 0
    values[rng.random((n_rows, n_cols)) > density] = 0
    scores = sp.csr_matrix(values)
    if draw(st.booleans()):  # explicit zeros stored, as a product can leave them
        scores.data[rng.random(len(scores.data)) < 0.2] = 0
    masks = [
        sp.csr_matrix((rng.random((n_rows, n_cols)) < 0.2).astype(np.float32))
        for _ in range(draw(st.integers(0, 2)))
    ]
    candidates = None
    if draw(st.booleans()):
        candidates = rng.choice(n_cols + 2, size=draw(st.integers(0, n_cols + 2))) - 1
    return scores, draw(st.integers(1, 12)), masks, candidates


def exact_top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The intended order by a full sort: score descending, then index ascending (the
    partition in :func:`top_n` may pick any of several items tied at the cut)."""
    index = np.full((len(scores), n), -1)
    values = np.full((len(scores), n), -np.inf, dtype=np.float32)
    for r, row in enumerate(scores):
        order = [i for i in np.lexsort((np.arange(len(row)), -row)) if np.isfinite(row[i])][:n]
        index[r, : len(order)], values[r, : len(order)] = order, row[order]
    return index, values


def dense_reference(scores, n, masks, candidates):  # type: ignore[no-untyped-def]
    dense = scores.toarray().astype(np.float32)
    for mask in masks:
        dense[mask.toarray() > 0] = -np.inf
    if candidates is not None:
        allowed = np.zeros(dense.shape[1], dtype=bool)
        allowed[candidates[(candidates >= 0) & (candidates < dense.shape[1])]] = True
        dense[:, ~allowed] = -np.inf
    return exact_top_n(dense, n)


@settings(max_examples=300, deadline=None)
@given(ranking_cases())
def test_sparse_ranking_matches_dense_or_defers(case) -> None:  # type: ignore[no-untyped-def]
    scores, n, masks, candidates = case
    index, values, short = sparse_top_n(scores, n, masks, candidates)
    want_index, want_values = dense_reference(scores, n, masks, candidates)
    done = np.setdiff1d(np.arange(scores.shape[0]), short)
    np.testing.assert_array_equal(index[done], want_index[done])
    np.testing.assert_array_equal(values[done], want_values[done])
    # a row is deferred only when the dense order would reach a zero or negative score
    for r in short:
        assert not (np.isfinite(want_values[r]) & (want_values[r] > 0)).all()


def _dataset(n_users: int = 60, n_items: int = 400, seed: int = 3) -> InteractionDataset:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for k, i in enumerate(rng.choice(n_items, size=rng.integers(2, 12), replace=False)):
            rows.append((f"u{u}", f"i{i}", "view", np.nan, 1_700_000_000.0 + k))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "value", "timestamp"])
    return build_dataset(frame, WeightPolicy())


@pytest.mark.parametrize("share", [0.0, 1.0])  # never / always through the sparse path
@pytest.mark.parametrize("name", ["item_knn", "user_knn"])
def test_neighbourhood_models_rank_like_their_dense_scores(
    name: str, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attune.models.registry import create_model

    monkeypatch.setattr(base, "SPARSE_SHARE", share)
    dataset = _dataset()
    model = create_model(name, {"neighbors": 10}).fit(dataset)
    history = dataset.matrix[:25]
    exclude = sp.csr_matrix(([1.0, 1.0], ([0, 3], [5, 7])), shape=history.shape)
    got = model.recommend(history, 30, exclude=exclude)
    scores = model.score(model.query(history), np.full(25, -1)).astype(np.float32)
    for mask in (exclude, history):
        scores[mask.toarray() > 0] = -np.inf
    want = exact_top_n(scores, 30)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


@pytest.mark.parametrize("name", ["item_knn", "user_knn"])
def test_one_person_gets_the_list_a_batch_gives_them(name: str) -> None:
    """A live request (one row, array path) and a batch export agree."""
    from attune.models.registry import create_model

    dataset = _dataset(seed=5)
    model = create_model(name, {"neighbors": 10}).fit(dataset)
    history = dataset.matrix[:30]
    exclude = sp.csr_matrix(([1.0, 1.0], ([0, 3], [5, 7])), shape=history.shape)
    candidates = np.arange(0, dataset.matrix.shape[1], 2)
    for only in (None, candidates):
        batch = model.recommend(history, 12, exclude=exclude, candidates=only)
        for u in range(30):
            one = model.recommend(history[u], 12, exclude=exclude[u], candidates=only)
            np.testing.assert_array_equal(one[0][0], batch[0][u])
            np.testing.assert_allclose(one[1][0], batch[1][u], rtol=1e-6)


@pytest.mark.parametrize("rows", [1, 30])  # array path, matrix path
def test_positive_only_lists_stop_where_the_scores_do(rows: int) -> None:
    """The decision engine keeps positive scores only: a sparse model returns those, in
    the dense order, and pads instead of ranking its whole catalog of zeros."""
    from attune.models.registry import create_model

    dataset = _dataset(seed=7)
    model = create_model("item_knn", {"neighbors": 3}).fit(dataset)
    history = dataset.matrix[:rows]
    index, scores = model.recommend(history, 40, positive_only=True)
    full_index, full_scores = model.recommend(history, 40)
    for r in range(rows):
        positive = full_scores[r] > 0
        assert positive.sum() < 40  # short rows: the case that matters
        np.testing.assert_array_equal(index[r][: positive.sum()], full_index[r][positive])
        assert (index[r][positive.sum() :] == -1).all()
        assert np.isneginf(scores[r][positive.sum() :]).all()
