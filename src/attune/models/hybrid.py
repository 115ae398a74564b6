"""A learning-to-rank hybrid: a LightGBM ranker re-ranks several models' candidates.

Fit holds out each person's newest ``validation_fraction`` of events as a label window,
fits the component models on the older events, and gathers each person's candidates:
the union of every component's top ``candidates_per_component`` unseen items. Every
(person, candidate) pair is described by the components' scores (raw, and row-scaled as
in a blend) and ranks among the candidates, how many components proposed it, item
aggregates (popularity, freshness, trend), the person's history (length,
mainstreamness, the era of their recent items, days since their last event, and how
well their time-of-day rhythm matches the item's audience), category affinity, and the
request context: how over-represented the item's audience is in the query's daypart,
day of the week, device, channel and region (:mod:`attune.features.context`). A listwise ranker
(XE-NDCG by default, or LambdaRank) learns to put the label-window items first, one
query group per person and label context: the label-window events a person had in one
context (at most ``contexts_per_user`` of their most frequent ones) are that group's
positives, in that context, and what they had in their other contexts is left out of
it. The components are then refitted on all the data for serving.

At serving time the context is the query's (``History.context``, set by the decision
engine from the request's ``context.*``); a query without one reads as "no context".

Everything the ranker sees at serving time is derived from the query's history, its
context and the model's own state, never from the user index, so a person who acted a
moment ago (or was never seen in training) is ranked exactly like the people it was
trained on.

With too little data to train a ranker (fewer than ``min_train_users`` people with a
label-window item among their candidates) the hybrid falls back to the plain sum of the
components' scaled scores over the same candidates, like a blend with its weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field, StringConstraints

from attune.errors import NotSupportedError
from attune.features.aggregates import (
    ItemAggregates,
    category_affinity,
    category_matrix,
    item_aggregates,
    item_time_of_day,
    mainstreamness,
    time_of_day_match,
)
from attune.features.context import ContextProfiles
from attune.features.interactions import (
    SECONDS_PER_DAY,
    History,
    InteractionDataset,
    WeightPolicy,
    arrival_order,
    weighted_history,
)
from attune.models.base import (
    ModelConfig,
    Recommender,
    first_similar_items,
    sparse_from_arrays,
    sparse_to_arrays,
    top_n,
)
from attune.models.blend import (
    BlendComponent,
    CompositeRecommender,
    forget_components,
    scale_rows,
)
from attune.models.deadline import lightgbm_callback
from attune.models.forgetting import (
    ErasedPerson,
    downdate_item_aggregates,
    downdate_time_of_day,
)

if TYPE_CHECKING:
    import lightgbm

log = logging.getLogger(__name__)

CHUNK_CELLS = 8_000_000
"""Dense score cells (rows × items) per component scored at once."""
RECENT_EVENTS = 10
"""A history item is "recent" within this many newest events (era and recent taste)."""
RANKER_FILE = "ranker.txt"


def _default_components() -> list[BlendComponent]:
    # chosen on MovieLens-100K validation: the two sharper/plainer variants of item-kNN
    # and EASE add about 0.007 NDCG@10 over the four base models
    return [
        BlendComponent(algorithm="ease", params={"l2": 200.0, "recency_half_life_events": 20.0}),
        BlendComponent(algorithm="transitions"),
        BlendComponent(algorithm="item_knn", params={"recency_half_life_events": 10.0}),
        BlendComponent(algorithm="popularity"),
        BlendComponent(algorithm="item_knn", params={"recency_half_life_events": 1.0}),
        BlendComponent(algorithm="ease", params={"l2": 500.0}),
    ]


class HybridConfig(ModelConfig):
    components: list[BlendComponent] = Field(
        default_factory=_default_components,
        min_length=1,
        description="Models whose candidates and scores feed the ranker; their weights "
        "only matter in the fallback sum.",
    )
    candidates_per_component: int = Field(
        default=50, ge=1, le=2_000, description="Top unseen items each component proposes."
    )
    validation_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Each person's newest share of events: labels."
    )
    max_train_users: int = Field(
        default=20_000, ge=1, description="Train the ranker on at most this many people."
    )
    min_train_users: int = Field(
        default=50,
        ge=1,
        description="Fewer people with a label among their candidates: fall back to the sum.",
    )
    objective: Literal["lambdarank", "rank_xendcg"] = Field(
        default="rank_xendcg",
        description="LightGBM ranking loss; XE-NDCG measured about 0.005 NDCG@10 better "
        "than LambdaRank on MovieLens-100K validation, and trains faster.",
    )
    num_leaves: int = Field(default=15, ge=2, le=1_024)
    learning_rate: float = Field(default=0.02, gt=0, le=1)
    n_estimators: int = Field(
        default=200, ge=1, le=5_000, description="Boosting rounds (the most, with early stopping)."
    )
    min_child_samples: int = Field(default=100, ge=1, description="Fewest pairs in a leaf.")
    early_stopping_rounds: int | None = Field(
        default=None,
        ge=1,
        description="Stop when NDCG@10 of a held-out fifth of the training people has not "
        "improved for this many rounds; None trains all rounds on everyone.",
    )
    num_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="LightGBM threads; more only help on large data and idle cores.",
    )
    context_keys: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]] = (
        Field(
            default_factory=lambda: ["daypart", "day_of_week", "device", "channel", "region"],
            max_length=8,
            description="Request context the ranker reads: daypart and day_of_week (from "
            "event timestamps, UTC) and stored event context fields; a key the data has "
            "fewer than two values of gives no feature. Empty: no context features.",
        )
    )
    context_prior_events: float = Field(
        default=20.0,
        gt=0,
        description="An item's context shares are shrunk toward the overall shares with "
        "this many pseudo-events.",
    )
    contexts_per_user: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Training query groups per person: their most frequent label contexts.",
    )
    seed: int = 0

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "candidates_per_component": trial.suggest_int("candidates_per_component", 20, 200),
            "objective": trial.suggest_categorical("objective", ["rank_xendcg", "lambdarank"]),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 50, 500, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
            "recency_half_life_events": None,  # components carry their own recency
        }


def newest_events(dataset: InteractionDataset, fraction: float) -> np.ndarray:
    """(n_events,) bool: each person's newest ``fraction`` of events (round half up, at
    least one), ordered per person by timestamp, ties in arrival order
    (:func:`~attune.features.interactions.arrival_order`)."""
    order = arrival_order(dataset.user_index, dataset.timestamp)
    users = np.asarray(dataset.user_index)[order]
    sizes = np.bincount(users, minlength=dataset.n_users)
    held = np.maximum(np.floor(sizes * fraction + 0.5).astype(np.int64), 1)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    position = np.arange(len(order)) - starts[users]
    newer = np.zeros(len(order), dtype=bool)
    newer[order] = position >= sizes[users] - held[users]
    return newer


def split_newest(
    dataset: InteractionDataset, fraction: float, newer: np.ndarray | None = None
) -> tuple[InteractionDataset, sp.csr_matrix]:
    """Each person's newest ``fraction`` of events as labels (:func:`newest_events`, or
    the given ``newer`` mask).

    Returns:
        (the older events as a dataset over the same users and items, with the same
        catalog; a (n_users, n_items) 0/1 CSR of newer items the person had not had in
        the older part).
    """
    if newer is None:
        newer = newest_events(dataset, fraction)
    older = subset_events(dataset, ~newer)
    shape = (dataset.n_users, dataset.n_items)
    had = older.matrix > 0
    labels = sp.csr_matrix(
        (
            np.ones(int(newer.sum()), dtype=np.float32),
            (dataset.user_index[newer], dataset.item_index[newer]),
        ),
        shape=shape,
    )
    labels.data[:] = 1.0
    labels = labels - labels.multiply(had)
    labels.eliminate_zeros()
    return older, sp.csr_matrix(labels)


def subset_events(dataset: InteractionDataset, keep: np.ndarray) -> InteractionDataset:
    """The dataset restricted to the events where ``keep`` is true.

    Users and items keep their indices (a person without kept events has an empty row),
    the catalog stays; the reference time becomes the newest kept event.
    """
    timestamp = dataset.timestamp[keep]
    return InteractionDataset(
        user_ids=dataset.user_ids,
        item_ids=dataset.item_ids,
        user_index=dataset.user_index[keep],
        item_index=dataset.item_index[keep],
        weight=dataset.weight[keep],
        timestamp=timestamp,
        reference_time=float(timestamp.max()) if len(timestamp) else dataset.reference_time,
        item_features=dataset.item_features,
        event_context=None if dataset.event_context is None else dataset.event_context[keep],
        user_traits=dataset.user_traits,
    )


def dataset_history(dataset: InteractionDataset, users: np.ndarray) -> History:
    """Histories (weights and recency ranks) of the given users from the dataset's events.

    Row r is user ``users[r]``; weights are the dataset's event weights, summed.
    """
    position = np.full(dataset.n_users, -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    order = arrival_order(dataset.user_index, dataset.timestamp)
    rows = position[dataset.user_index[order]]
    keep = rows >= 0
    return weighted_history(
        rows[keep],
        dataset.item_index[order][keep].astype(np.int64),
        np.full(int(keep.sum()), "w", dtype=object),
        dataset.weight[order][keep].astype(np.float64),
        dataset.timestamp[order][keep].astype(np.float64),
        n_rows=len(users),
        n_items=dataset.n_items,
        policy=WeightPolicy(value_modes={"w": "linear"}),
    )


@dataclass(frozen=True)
class _Pairs:
    """(row, candidate) pairs of one batch of queries, rows ascending, with features.

    Attributes:
        rows: (n_pairs,) query row of each pair.
        items: (n_pairs,) internal item index of each candidate.
        features: (n_pairs, n_features) float32, columns named by ``names``.
    """

    rows: np.ndarray
    items: np.ndarray
    features: np.ndarray
    names: list[str]


@dataclass(frozen=True)
class LabelGroups:
    """Training query groups, one per (person, label context), ordered by person.

    Attributes:
        row: (n_groups,) the person's position among the training people, ascending.
        codes: (n_groups, n_context_keys) the group's context (value codes, -1 unknown).
        labels: (n_groups, n_items) 0/1 CSR: label items the person had in that context.
    """

    row: np.ndarray
    codes: np.ndarray
    labels: sp.csr_matrix


def label_groups(
    users: np.ndarray,
    labels: sp.csr_matrix,
    newer: InteractionDataset,
    codes: np.ndarray,
    per_user: int,
) -> LabelGroups:
    """Each training person's label events grouped by their context.

    Args:
        users: (n,) the training people (internal indices, ascending).
        labels: (n_users, n_items) the label items (:func:`split_newest`).
        newer: the label-window events.
        codes: (n_newer_events, n_keys) their context codes.
        per_user: groups kept per person: their contexts with the most label events
            (ties: the lower codes).
    """
    position = np.full(labels.shape[0], -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    event_user = np.asarray(newer.user_index, dtype=np.int64)
    event_item = np.asarray(newer.item_index, dtype=np.int64)
    row = position[event_user]
    keep = row >= 0
    keep[keep] = np.asarray(labels[event_user[keep], event_item[keep]]).ravel() > 0
    row, item, codes = row[keep], event_item[keep], codes[keep]
    if codes.shape[1] and len(codes):
        contexts, context_of = np.unique(codes, axis=0, return_inverse=True)
        context_of = np.asarray(context_of).ravel()
    else:
        contexts, context_of = np.full((1, codes.shape[1]), -1), np.zeros(len(row), np.int64)
    n_contexts = len(contexts)
    keys, group_of, counts = np.unique(
        row * n_contexts + context_of, return_inverse=True, return_counts=True
    )
    group_row = keys // n_contexts
    order = np.lexsort((keys, -counts, group_row))
    run = np.r_[True, group_row[order][1:] != group_row[order][:-1]]
    starts = np.flatnonzero(run)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept = np.zeros(len(keys), dtype=bool)
    kept[order] = rank < per_user
    new_index = np.cumsum(kept) - 1
    on = kept[np.asarray(group_of).ravel()]
    group_labels = sp.csr_matrix(
        (
            np.ones(int(on.sum()), dtype=np.float32),
            (new_index[np.asarray(group_of).ravel()[on]], item[on]),
        ),
        shape=(int(kept.sum()), labels.shape[1]),
    )
    group_labels.data[:] = 1.0
    return LabelGroups(group_row[kept], contexts[keys[kept] % n_contexts], group_labels)


class HybridRecommender(CompositeRecommender):
    """See the module docstring. State: components, item aggregates, categories, ranker."""

    name = "hybrid"
    config_class = HybridConfig
    config: HybridConfig

    def __init__(self, config: HybridConfig | dict | None = None) -> None:
        super().__init__(config)
        self.components: list[Recommender] = []
        self.aggregates: ItemAggregates | None = None
        self._item_cache: dict[str, np.ndarray] | None = None
        self.categories = sp.csr_matrix((0, 0), dtype=np.float32)
        self.item_day_parts = np.zeros((0, 4))  # (n_items, 4): when each item is used
        self.context = ContextProfiles()  # who uses each item in which context
        self.booster: lightgbm.Booster | None = None  # None: the fallback sum
        self.reference_time: float | None = None  # "now" of the aggregates' ages

    # -- training -----------------------------------------------------------------------

    def fit(self, dataset: InteractionDataset) -> Self:
        newer = newest_events(dataset, self.config.validation_fraction)
        older, labels = split_newest(dataset, self.config.validation_fraction, newer)
        self._set_state(older)
        label_window = subset_events(dataset, newer)
        codes = self.context.event_codes(label_window)
        self.booster = self._train_ranker(older, labels, label_window, codes)
        self._set_state(dataset)
        return self

    def _set_state(self, dataset: InteractionDataset) -> None:
        from attune.models.registry import create_model

        self.components = [
            create_model(c.algorithm, c.params).fit(dataset) for c in self.config.components
        ]
        self.aggregates = item_aggregates(dataset)
        self.reference_time = dataset.reference_time
        self._item_cache = None
        self.categories, _ = category_matrix(dataset.item_features, dataset.n_items)
        self.item_day_parts = item_time_of_day(dataset)
        self.context = ContextProfiles.fit(
            dataset, self.config.context_keys, self.config.context_prior_events
        )
        self.item_ids = dataset.item_ids

    def _train_ranker(
        self,
        older: InteractionDataset,
        labels: sp.csr_matrix,
        newer: InteractionDataset,
        codes: np.ndarray,
    ) -> lightgbm.Booster | None:
        """The booster trained on the label window, or None when data is too thin."""
        training = self._training_set(older, labels, newer, codes)
        if training is None:
            return None
        return self._boost(*training)

    def _training_set(
        self,
        older: InteractionDataset,
        labels: sp.csr_matrix,
        newer: InteractionDataset,
        codes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
        """(features, 0/1 relevance, group sizes, feature names) of the (person, label
        context) groups with a label among their candidates, rows grouped; None when too
        few. ``newer`` holds the label-window events, ``codes`` their contexts."""
        users = np.flatnonzero((np.diff(labels.indptr) > 0) & (np.diff(older.matrix.indptr) > 0))
        if len(users) > self.config.max_train_users:
            rng = np.random.default_rng(self.config.seed)
            users = np.sort(rng.choice(users, self.config.max_train_users, replace=False))
        if len(users) < self.config.min_train_users:
            return None
        history = dataset_history(older, users)
        grouped = label_groups(users, labels, newer, codes, self.config.contexts_per_user)
        features, relevance, groups, people = [], [], [], 0
        for start, stop in self._chunks(len(users)):
            low, high = np.searchsorted(grouped.row, [start, stop])
            pairs = self._with_context(
                _expand(
                    self._pairs(history[start:stop], users[start:stop]),
                    grouped.row[low:high] - start,
                ),
                grouped.codes[low:high],
            )
            group = low + pairs.rows
            label = np.asarray(grouped.labels[group, pairs.items]).ravel() > 0
            # what the person had in another context is no negative of this one
            had = np.asarray(labels[users[grouped.row[group]], pairs.items]).ravel() > 0
            keep = label | ~had
            rows, label = pairs.rows[keep], label[keep]
            sizes = np.bincount(rows, minlength=high - low)
            positives = np.bincount(rows, weights=label, minlength=high - low)
            useful = positives[rows] > 0
            features.append(pairs.features[keep][useful])
            relevance.append(label[useful].astype(np.int32))
            groups.append(sizes[positives > 0])
            people += len(np.unique(grouped.row[low:high][positives > 0]))
        if people < self.config.min_train_users:
            log.info("hybrid: %d people with a label among candidates; fallback sum", people)
            return None
        group = np.concatenate(groups)
        return np.concatenate(features), np.concatenate(relevance), group, pairs.names

    def _boost(
        self, features: np.ndarray, relevance: np.ndarray, group: np.ndarray, names: list[str]
    ) -> lightgbm.Booster:
        """A ranking booster; with early stopping, a fifth of the people is held out."""
        lightgbm = _lightgbm()
        config = self.config
        params = {
            "objective": config.objective,
            "num_leaves": config.num_leaves,
            "learning_rate": config.learning_rate,
            "min_data_in_leaf": config.min_child_samples,
            "eval_at": [10],
            "seed": config.seed,
            "num_threads": config.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        held = np.zeros(len(group), dtype=bool)
        if config.early_stopping_rounds and len(group) >= 5 * config.min_train_users:
            rng = np.random.default_rng(config.seed)
            held[rng.choice(len(group), len(group) // 5, replace=False)] = True
        in_held = np.repeat(held, group)
        train = lightgbm.Dataset(
            features[~in_held], relevance[~in_held], group=group[~held], feature_name=names
        )
        valid_sets, callbacks = [], []
        if held.any():
            valid_sets = [
                lightgbm.Dataset(
                    features[in_held], relevance[in_held], group=group[held], reference=train
                )
            ]
            callbacks = [lightgbm.early_stopping(config.early_stopping_rounds, verbose=False)]
        late = lightgbm_callback()  # a fit deadline (tuning) keeps the rounds built so far
        if late is not None:
            callbacks.append(late)
        booster = lightgbm.train(
            params,
            train,
            num_boost_round=config.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best = booster.best_iteration if held.any() and booster.best_iteration > 0 else None
        log.info(
            "hybrid: ranker on %d groups, %d pairs, %s rounds", len(group), len(features), best
        )
        # the in-memory booster is the one a saved model reloads, so both score alike
        return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))

    # -- features -----------------------------------------------------------------------

    def _item_columns(self) -> dict[str, np.ndarray]:
        """Item features that mean the same on the training window and on all the data.

        Counts grow with the data, so a tree split on them during training would send
        every item one way at serving time; popularity enters as a percentile instead.
        """
        assert self.aggregates is not None
        if self._item_cache is None:
            aggregates = self.aggregates
            self._item_cache = {
                "popularity_percentile": _percentile(aggregates.log_count),
                "users_percentile": _percentile(aggregates.log_users),
                "popularity_7d_percentile": _percentile(aggregates.log_popularity_7d),
                "popularity_30d_percentile": _percentile(aggregates.log_popularity_30d),
                "days_since_first": aggregates.days_since_first,
                "days_since_last": aggregates.days_since_last,
                "mean_age_days": aggregates.mean_age_days,
                "trend_7d": aggregates.trend_7d,
            }
        return self._item_cache

    def _chunks(self, n_rows: int) -> list[tuple[int, int]]:
        size = max(1, CHUNK_CELLS // max(self.n_items, 1))
        return [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]

    def _pairs(self, history: History, user_index: np.ndarray) -> _Pairs:
        """Candidates and their features for a batch of queries (see the module docstring)."""
        assert self.aggregates is not None
        n_rows, k = history.shape[0], self.config.candidates_per_component
        seen = history.weights.tocoo()
        scaled, votes = [], sp.csr_matrix(history.shape, dtype=np.float32)
        for model in self.components:
            scores = np.array(model.score(model.query(history), user_index), dtype=np.float32)
            scores[seen.row, seen.col] = -np.inf
            scaled.append(scale_rows(scores))
            best, _ = top_n(np.where(scaled[-1] > 0, scaled[-1], -np.inf), k)
            found = best.ravel() >= 0
            votes = votes + sp.csr_matrix(
                (
                    np.ones(int(found.sum()), dtype=np.float32),
                    (np.repeat(np.arange(n_rows), best.shape[1])[found], best.ravel()[found]),
                ),
                shape=history.shape,
            )
        votes = sp.csr_matrix(votes)
        votes.sort_indices()
        coo = votes.tocoo()
        rows, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        columns: dict[str, np.ndarray] = {"votes": coo.data}
        for k, (spec, scores) in enumerate(zip(self.config.components, scaled, strict=True)):
            value = scores[rows, items]
            columns[f"c{k}_{spec.algorithm}_score"] = value
            columns[f"c{k}_{spec.algorithm}_rank"] = _rank_within_rows(rows, items, value)
        aggregates, item_columns = self.aggregates, self._item_columns()
        columns.update({f"item_{k}": v[items] for k, v in item_columns.items()})
        # the person, from the history itself (the user index may be unknown or stale)
        recent = history.ranks.copy()
        recent.data = (recent.data <= RECENT_EVENTS).astype(np.float32)
        era = _row_mean(recent, aggregates.mean_age_days)[rows]
        columns["user_log_history"] = np.log1p(history.row_sizes())[rows]
        popularity = item_columns["popularity_percentile"]
        columns["user_mainstreamness"] = mainstreamness(history.weights, popularity)[rows]
        columns["user_era_days"] = era
        columns["era_gap_mean_age"] = aggregates.mean_age_days[items] - era
        columns["era_gap_first"] = aggregates.days_since_first[items] - era
        columns["category_affinity"] = category_affinity(
            history.weights > 0, self.categories, rows, items
        )
        columns["category_affinity_recent"] = category_affinity(
            history.weighted(RECENT_EVENTS), self.categories, rows, items
        )
        # the person's recency and daily rhythm, when the history carries its times
        unknown = np.full(len(rows), np.nan)
        columns["user_days_inactive"] = (
            np.maximum(self.reference_time - history.newest_time[rows], 0.0) / SECONDS_PER_DAY
            if history.newest_time is not None and self.reference_time is not None
            else unknown
        )
        columns["time_of_day_match"] = (
            time_of_day_match(history.day_parts, self.item_day_parts, rows, items)
            if history.day_parts is not None and len(self.item_day_parts) == self.n_items
            else unknown
        )
        features = np.column_stack(list(columns.values())).astype(np.float32)
        return _Pairs(rows, items, features, list(columns))

    def _with_context(self, pairs: _Pairs, codes: np.ndarray) -> _Pairs:
        """The pairs with the context columns of each row's context ``codes``
        (n_rows, n_keys); unchanged when the data had no context."""
        if not self.context:
            return pairs
        columns = self.context.columns(codes[pairs.rows], pairs.items)
        features = np.column_stack([pairs.features, *columns.values()]).astype(np.float32)
        return _Pairs(pairs.rows, pairs.items, features, pairs.names + list(columns))

    # -- serving ------------------------------------------------------------------------

    def query(self, history: History | sp.csr_matrix) -> History:  # type: ignore[override]
        return history if isinstance(history, History) else History.from_matrix(history)

    def score(self, history: History, user_index: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """Candidates' ranker scores (or fallback sums), shifted per row so the lowest is 1;
        every other item 0, which serving reads as "no evidence"."""
        out = np.zeros(history.shape, dtype=np.float32)
        for start, stop in self._chunks(history.shape[0]):
            part = history[start:stop]
            pairs = self._pairs(part, user_index[start:stop])
            if len(pairs.rows) == 0:
                continue
            if self.booster is not None:
                codes = self.context.request_codes(part.context, stop - start)
                value = self.booster.predict(
                    _named_columns(self._with_context(pairs, codes), self.booster.feature_name()),
                    num_threads=self.config.num_threads,
                )
            else:
                value = np.zeros(len(pairs.rows))
                for k, spec in enumerate(self.config.components):
                    column = pairs.names.index(f"c{k}_{spec.algorithm}_score")
                    value += spec.weight * pairs.features[:, column]
            value = np.asarray(value, dtype=np.float64)
            low = np.full(stop - start, np.inf)
            np.minimum.at(low, pairs.rows, value)
            out[start + pairs.rows, pairs.items] = value - low[pairs.rows] + 1.0
        return out

    def similar_items(self, item_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return first_similar_items(self.components, item_index, n, "hybrid")

    def forget(self, person: ErasedPerson) -> bool:
        """Forget in every component and take the person out of the item aggregates,
        the items' times of day and the context profiles.

        The ranker learnt from the person's labels and cannot unlearn them: always False
        when they had events (a refit retrains it).
        """
        if person.empty:
            return True
        self.components, _ = forget_components(self.components, person)
        if self.aggregates is not None and self.reference_time is not None:
            if len(self.item_day_parts) == self.n_items:
                counts = np.rint(np.expm1(self.aggregates.log_count))
                self.item_day_parts = downdate_time_of_day(self.item_day_parts, counts, person)
            self.aggregates = downdate_item_aggregates(self.aggregates, person, self.reference_time)
            self._item_cache = None
        self.context = self.context.without(person.item_index, person.timestamp, person.context)
        return False

    # -- persistence --------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        assert self.aggregates is not None
        arrays = {f"item_{k}": v for k, v in self.aggregates.columns().items()}
        arrays.update({f"categories_{k}": v for k, v in sparse_to_arrays(self.categories).items()})
        if self.reference_time is not None:
            arrays["reference_time"] = np.array([self.reference_time])
        arrays["day_parts_item"] = self.item_day_parts
        arrays.update({f"context_{k}": v for k, v in self.context.to_arrays().items()})
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._item_cache = None
        if "reference_time" in arrays:
            self.reference_time = float(arrays["reference_time"][0])
        self.aggregates = ItemAggregates.from_columns(
            {k[5:]: v for k, v in arrays.items() if k.startswith("item_")}
        )
        self.categories = sparse_from_arrays(
            {k[11:]: v for k, v in arrays.items() if k.startswith("categories_")}
        )
        self.item_day_parts = np.asarray(arrays.get("day_parts_item", np.zeros((0, 4))))
        self.context = ContextProfiles.from_arrays(
            {k[8:]: v for k, v in arrays.items() if k.startswith("context_")},
            self.config.context_prior_events,
        )

    def save(self, path: Path) -> None:
        super().save(path)
        ranker = path / RANKER_FILE
        if self.booster is not None:
            ranker.write_text(self.booster.model_to_string())
        elif ranker.exists():
            ranker.unlink()  # a stale ranker from an earlier save must not come back

    @classmethod
    def load(cls, path: Path) -> Self:
        model = super().load(path)
        ranker = path / RANKER_FILE
        if ranker.exists():
            model.booster = _lightgbm().Booster(model_str=ranker.read_text())
        return model


def _expand(pairs: _Pairs, group_rows: np.ndarray) -> _Pairs:
    """The pairs repeated once per group, ``group_rows`` (ascending) naming each group's
    row; the result's rows are group positions."""
    starts = np.searchsorted(pairs.rows, group_rows, side="left")
    lengths = np.searchsorted(pairs.rows, group_rows, side="right") - starts
    offsets = np.cumsum(lengths) - lengths
    take = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
    rows = np.repeat(np.arange(len(group_rows)), lengths)
    return _Pairs(rows, pairs.items[take], pairs.features[take], pairs.names)


def _named_columns(pairs: _Pairs, names: list[str]) -> np.ndarray:
    """The feature columns ``names`` asks for, in its order: by name, so a ranker saved
    with fewer features still reads its own; a context column the model no longer has
    (a key the data lost) reads as neutral 0."""
    position = {name: k for k, name in enumerate(pairs.names)}
    if all(name in position for name in names):
        return pairs.features[:, [position[name] for name in names]]
    zeros = np.zeros(len(pairs.rows), dtype=np.float32)
    return np.column_stack(
        [pairs.features[:, position[n]] if n in position else zeros for n in names]
    )


def _rank_within_rows(rows: np.ndarray, items: np.ndarray, value: np.ndarray) -> np.ndarray:
    """1-based rank of each pair's ``value`` among its row's pairs (ties: lower item first)."""
    order = np.lexsort((items, -value, rows))
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(rows), dtype=np.float64)
    rank[order] = np.arange(len(order)) - run_start + 1
    return rank


def _row_mean(mask: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Mean of the finite ``values`` over each row's non-zero entries (NaN if none)."""
    mask = sp.csr_matrix(mask > 0, dtype=np.float64)
    finite = np.isfinite(values)
    totals = mask @ np.where(finite, values, 0.0)
    counts = mask @ finite.astype(np.float64)
    return np.divide(totals, counts, out=np.full_like(totals, np.nan), where=counts > 0)


def _percentile(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank among all of them, in (0, 1]; ties share their mean rank.

    (scipy.stats.rankdata's "average", in numpy: importing scipy.stats costs a second.)
    """
    if len(values) == 0:
        return np.zeros(0)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return mean_rank[inverse.ravel()].astype(np.float64) / len(values)


def _lightgbm() -> Any:
    """The lightgbm module, imported on first use (never by ``import attune``)."""
    try:
        import lightgbm
    except ImportError as exc:
        raise NotSupportedError(
            "HybridRecommender needs lightgbm to train or load its ranker "
            "(pip install 'attune[ml]')"
        ) from exc
    return lightgbm
