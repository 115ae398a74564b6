"""The temporal validation split tuning judges candidates on, precomputed once.

PROTOCOL.md's rule applied to the training data: each person's newest fifth is VALID,
the rest TRAIN' (its events kept in arrival order, as training and serving see them).
Everything that does not depend on the model (the TRAIN' dataset, each validation
person's live history, what they went on to have) is built here once, so a trial costs
one fit and one scoring pass.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd

from attune.evaluation.splits import temporal_user_split
from attune.features.interactions import WeightPolicy, build_dataset, frame_history
from attune.models.base import Recommender, top_n
from attune.models.blend import scale_rows
from attune.models.registry import create_model

MAX_VALID_USERS = 5_000
VALID_CELLS = 100_000_000
"""Validation people × catalog items held at most: every candidate's scores are a dense
matrix of that size (400 MB of float32, and ranking it takes a few times that), so a
large catalog is judged on fewer people rather than on more memory than the host has
(at 91,000 items, 5,000 people took 23 GB)."""
MIN_VALID_USERS = 500
"""... but never fewer people than this, however large the catalog."""
K = 10
QUERY_TIME_RECENCY = frozenset(
    {"ease", "item_knn", "user_knn", "transitions", "als", "bpr", "content"}
)
"""Models whose ``recency_half_life_events`` only weights the history they are queried
with (their fit ignores it), so one fit can be scored with several values."""


def max_valid_users(n_items: int) -> int:
    """How many validation people a catalog of ``n_items`` is judged on (at most)."""
    return max(MIN_VALID_USERS, min(MAX_VALID_USERS, VALID_CELLS // max(n_items, 1)))


class ValidationSet:
    """TRAIN'/VALID with everything that does not depend on the model precomputed.

    Attributes:
        users: external ids of the validation people (rows of every score matrix).
        dataset: TRAIN' as an interaction dataset.
        relevant: (n_users, n_items) bool, items each person had in VALID but not before.
        seen: (n_users, n_items) bool, items in each person's TRAIN' history.
        n_relevant: (n_users,) VALID items new to the person, known to TRAIN' or not.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        policy: WeightPolicy,
        seed: int = 0,
        items: pd.DataFrame | None = None,
    ) -> None:
        # TRAIN' keeps arrival order, as the deployed model sees it: sorted by item id, data
        # with equal timestamps would let models read VALID off the order of history
        train, valid = temporal_user_split(frame, keep_order=True)
        train_users = train["user_id"].astype(str).to_numpy(dtype=object)
        valid_users = valid["user_id"].astype(str).to_numpy(dtype=object)
        self.dataset = build_dataset(
            train, WeightPolicy(policy.type_weights, policy.value_modes), items
        )
        users = sorted(set(valid_users) & set(train_users))
        most = max_valid_users(self.dataset.n_items)
        if len(users) > most:
            rng = np.random.default_rng(seed)
            users = sorted(rng.choice(users, most, replace=False).tolist())
        self.train, self.policy, self.users, self.items = train, policy, users, items
        self.history = frame_history(
            train, users, self.dataset.item_position, self.dataset.n_items, policy
        )
        # like serving: every person is scored from their history (models fold them in)
        self.user_index = np.full(len(users), -1, dtype=np.int64)
        valid_items = valid["item_id"].astype(str).to_numpy(dtype=object)
        rows = pd.Index(users).get_indexer(valid_users)
        columns = pd.Index(self.dataset.item_ids).get_indexer(valid_items)
        known = (rows >= 0) & (columns >= 0)
        relevant = np.zeros((len(users), self.dataset.n_items), dtype=bool)
        relevant[rows[known], columns[known]] = True
        seen = self.history.weights.toarray() > 0
        relevant &= ~seen
        self.relevant, self.seen = relevant, seen
        # items new in VALID cannot be ranked by anyone, but count in the ideal DCG
        train_items = train["item_id"].astype(str).to_numpy(dtype=object)
        in_train = pd.MultiIndex.from_arrays([valid_users, valid_items]).isin(
            pd.MultiIndex.from_arrays([train_users, train_items])
        )
        fresh = rows[(rows >= 0) & ~in_train]
        self.n_relevant = np.bincount(fresh, minlength=len(users)).astype(np.int64)
        self.keep = self.n_relevant > 0

    def fit(self, algorithm: str, params: dict[str, Any]) -> Recommender:
        """The candidate fitted on TRAIN'."""
        return create_model(algorithm, params).fit(self.dataset)

    def scores_of(self, model: Recommender) -> np.ndarray:
        """A fitted model's row-scaled scores for every validation person (seen: -inf)."""
        scores = np.asarray(
            model.score(model.query(self.history), self.user_index), dtype=np.float32
        )
        scores = scale_rows(scores)
        scores[self.seen] = -np.inf
        return scores

    def scores(self, algorithm: str, params: dict[str, Any]) -> np.ndarray:
        """The candidate's scaled scores for every validation user (seen items -inf)."""
        return self.scores_of(self.fit(algorithm, params))

    def ndcg(self, scores: np.ndarray, k: int = K) -> float:
        """Mean NDCG@k over validation users with something new to find."""
        per_user = self.user_ndcg(scores, k)
        return float(per_user.mean()) if len(per_user) else 0.0

    def user_ndcg(self, scores: np.ndarray, k: int = K) -> np.ndarray:
        """NDCG@k of each validation user with something new to find (float64)."""
        rows = np.flatnonzero(self.keep)
        if len(rows) == 0:
            return np.zeros(0)
        k = min(k, scores.shape[1])
        # the list serving would hand out: equal scores rank by item position, as in
        # recommend(); any other tie order judges lists nobody is shown (a model that
        # scores many items alike, e.g. a few neighbours' votes, gains or loses by it)
        top, _ = top_n(scores[rows], k)
        hits = np.take_along_axis(self.relevant[rows], np.maximum(top, 0), axis=1) & (top >= 0)
        discount = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))[
            np.minimum(self.n_relevant[rows], K) - 1
        ]
        return np.asarray((hits * discount).sum(axis=1) / ideal, dtype=np.float64)


def with_recency(model: Recommender, recency_half_life_events: float | None) -> Recommender:
    """A copy of a fitted model that weights query history with another recency (only for
    :data:`QUERY_TIME_RECENCY` models: the fitted state is shared, not refitted)."""
    twin = copy.copy(model)
    twin.config = model.config.model_copy(
        update={"recency_half_life_events": recency_half_life_events}
    )
    return twin


def order_is_meaningful(frame: pd.DataFrame, min_share: float = 0.25) -> bool:
    """Whether enough of people's consecutive events are at distinct times for "what came
    next" to mean something: False for data imported with one timestamp, or with a date
    per day for people who do many things a day. (ML-100K: 48%, many ratings share a
    second.)"""
    if frame.empty:
        return False
    per_user = frame.groupby(frame["user_id"].astype(str), sort=False)["timestamp"]
    distinct = per_user.nunique().to_numpy(dtype=np.float64)
    sizes = per_user.size().to_numpy(dtype=np.float64)
    steps = np.maximum(sizes - 1.0, 0.0)
    if steps.sum() == 0:
        return False
    return bool((np.maximum(distinct - 1.0, 0.0).sum() / steps.sum()) >= min_share)


def clear_gain(gain: np.ndarray, standard_errors: float) -> bool:
    """Whether per-person gains (one model's NDCG minus another's, same people) are
    positive by more than ``standard_errors`` standard errors of their mean; with fewer
    than two people, whether their sum is positive."""
    if len(gain) < 2:
        return bool(gain.sum() > 0)
    error = gain.std(ddof=1) / math.sqrt(len(gain))
    mean = gain.mean()
    return bool(mean > 0 and mean > standard_errors * error)
